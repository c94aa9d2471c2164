"""`carealert console serve`: the projector (services.console.projector) in a thread of its own,
and /metrics, /healthz, /readyz on CAREALERT_CONSOLE_HOST:CAREALERT_CONSOLE_PORT (127.0.0.1:8084;
the console's pages will be served here too). /healthz fails when the projector has stopped,
/readyz until it has assigned its partitions.

Exit status: 0 after SIGTERM/SIGINT, 1 when the projector failed (a database or Kafka error:
nothing past the last batch written is lost; a restart reads on from the stored offsets).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from services.common import web
from services.common.kafka import KafkaClient
from services.common.signals import stop_on_signals
from services.console.metrics import ConsoleMetrics
from services.console.projector import KafkaSource, Projector
from services.console.settings import ConsoleSettings

log = logging.getLogger(__name__)


def checks(projector: Projector, thread_alive: threading.Event) -> tuple[web.Check, web.Check]:
    """(healthz, readyz) of a running projector."""

    def healthz() -> tuple[bool, str]:
        if not thread_alive.is_set():
            return False, "unhealthy: the projector stopped"
        return True, "ok"

    def readyz() -> tuple[bool, str]:
        if not thread_alive.is_set():
            return False, "not ready: the projector stopped"
        if not projector.started:
            return False, "not ready: assigning partitions"
        return True, "ready"

    return healthz, readyz


async def serve(settings: ConsoleSettings, engine: Engine, kafka: KafkaClient) -> None:
    """Project and serve until SIGTERM/SIGINT (returns) or until the projector fails (raises
    its exception)."""
    metrics = ConsoleMetrics(CollectorRegistry())
    projector = Projector(
        KafkaSource(kafka),
        engine,
        metrics,
        batch_max=settings.console_batch_max,
        poll_s=settings.console_poll_s,
    )
    stop_thread = threading.Event()
    alive = threading.Event()
    healthz, readyz = checks(projector, alive)
    runner = await web.serve(
        web.health_app(metrics.registry, healthz, readyz),
        settings.console_host,
        settings.console_port,
    )

    def project() -> None:
        alive.set()
        try:
            projector.run(stop_thread)
        finally:
            alive.clear()

    stop = stop_on_signals()
    work = asyncio.create_task(asyncio.to_thread(project))
    waiting = asyncio.create_task(stop.wait())
    log.info("console started", extra={"port": settings.console_port})
    try:
        await asyncio.wait({work, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_thread.set()
        waiting.cancel()
        try:
            await work  # raises what stopped the projector, if it failed
        finally:
            await runner.cleanup()
