"""Stopping a service cleanly: SIGTERM and SIGINT set an event its main loop waits on."""

from __future__ import annotations

import asyncio
import signal


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM or SIGINT sets (the service, not its HTTP server, owns the signals)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
