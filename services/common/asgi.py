"""uvicorn inside a service's own event loop (notify's API, the console's pages)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class Server(uvicorn.Server):
    """uvicorn that leaves SIGTERM/SIGINT to the service (services.common.signals), which stops
    it by setting `should_exit`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
