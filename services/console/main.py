"""`carealert console serve`: the projector (services.console.projector) in a thread of its own,
and the pages (services.console.web) with /metrics, /healthz, /readyz on
CAREALERT_CONSOLE_HOST:CAREALERT_CONSOLE_PORT (127.0.0.1:8084; HTTPS when CAREALERT_TLS_CERTFILE
and _KEYFILE are set). /healthz fails when the projector has stopped, /readyz until it has
assigned its partitions. Acknowledgements and notes go to notify (CAREALERT_NOTIFY_URL), signed
with CAREALERT_ACK_SECRET; the audit trail to care.audit.v1.

Exit status: 0 after SIGTERM/SIGINT, 1 when the projector failed (a database or Kafka error:
nothing past the last batch written is lost; a restart reads on from the stored offsets).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from services.common import web
from services.common.asgi import Server
from services.common.audit import AuditRecord, write_audit
from services.common.kafka import KafkaClient
from services.common.signals import stop_on_signals
from services.console.acking import NotifyAcks, Recorder
from services.console.context import Audit, Console
from services.console.metrics import ConsoleMetrics
from services.console.projector import KafkaSource, Projector
from services.console.registry import Registry
from services.console.sessions import Lockout, Sessions
from services.console.settings import ConsoleSettings
from services.console.web import create_app
from services.notify.config import load_routing

log = logging.getLogger(__name__)
AUDIT_TIMEOUT_S = 10.0


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


class KafkaAudit:
    """The audit trail's writer: care.audit.v1, waiting for Kafka's acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def __call__(self, record: AuditRecord) -> None:
        await asyncio.wait_for(write_audit(self.producer, record), timeout=AUDIT_TIMEOUT_S)


class ConsoleNotReady(ValueError):
    """A setting the pages need is missing (the message names it)."""


def console_of(
    settings: ConsoleSettings,
    engine: Engine,
    metrics: ConsoleMetrics,
    recorder: Recorder,
    audit: Audit,
) -> Console:
    """The pages' dependencies from the settings: the policy files, the people registry, the
    session store and the lockout. Raises (RoutingInvalid, PeopleInvalid) on a file that does
    not load."""
    routing = load_routing(settings.policy_dir / "routing.yaml")
    origin = settings.console_public_url.rstrip("/") if settings.console_public_url else None
    return Console(
        engine=engine,
        routing=routing,
        staff=Registry.load(settings.users_file),
        recorder=recorder,
        audit=audit,
        sessions=Sessions(idle_s=settings.console_idle_timeout_s),
        lockout=Lockout(
            failures=settings.console_lockout_failures, window_s=settings.console_lockout_s
        ),
        refresh_s=settings.console_refresh_s,
        secure_cookies=settings.tls_certfile is not None
        or (origin is not None and origin.startswith("https://")),
        origin=origin,
        demo=settings.env == "demo",
        metrics=metrics,
    )


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (a port in use stops the
    console at once, naming the port, instead of leaving a projector running alone)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConsoleNotReady(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def _serve_http(server: Server, sock: socket.socket) -> None:
    """uvicorn's serve; its own exit on a startup failure becomes an ordinary error."""
    try:
        await server.serve(sockets=[sock])
    except SystemExit:
        raise RuntimeError("the console's web server did not start") from None


async def serve(settings: ConsoleSettings, engine: Engine, kafka: KafkaClient) -> None:
    """Project and serve the pages until SIGTERM/SIGINT (returns) or until the projector fails
    (raises its exception)."""
    if settings.ack_secret is None:
        raise ConsoleNotReady("CAREALERT_ACK_SECRET is not set (notify's: it signs acks)")
    metrics = ConsoleMetrics(CollectorRegistry())
    sock = bound_socket(settings.console_host, settings.console_port)
    client = httpx.AsyncClient()
    recorder = NotifyAcks(settings.notify_url, settings.ack_secret, client)
    producer = AIOKafkaProducer(**kafka.aiokafka(acks="all", enable_idempotence=True))
    try:
        console = console_of(settings, engine, metrics, recorder, KafkaAudit(producer))
        await producer.start()
    except BaseException:
        sock.close()
        await client.aclose()
        await producer.stop()
        raise
    projector = Projector(
        KafkaSource(kafka),
        engine,
        metrics,
        batch_max=settings.console_batch_max,
        poll_s=settings.console_poll_s,
    )
    stop_thread = threading.Event()
    alive = threading.Event()
    console.healthz, console.readyz = checks(projector, alive)
    server = Server(
        uvicorn.Config(
            create_app(console),
            log_config=None,
            access_log=False,
            **settings.uvicorn_tls(),  # type: ignore[arg-type]  # str paths
        )
    )
    loop = asyncio.get_running_loop()
    projected: asyncio.Future[None] = loop.create_future()

    def project() -> None:
        """The projector in a thread of its own (not the pool the pages read with)."""
        alive.set()
        error: BaseException | None = None
        try:
            projector.run(stop_thread)
        except BaseException as exc:  # handed to the loop, raised by serve()
            error = exc
        finally:
            alive.clear()
            loop.call_soon_threadsafe(_settle, projected, error)

    stop = stop_on_signals()
    http = asyncio.create_task(_serve_http(server, sock))
    threading.Thread(target=project, name="console-projector", daemon=True).start()
    waiting = asyncio.create_task(stop.wait())
    log.info("console started", extra={"port": settings.console_port})
    try:
        watched: set[asyncio.Future[Any]] = {projected, waiting, http}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_thread.set()
        waiting.cancel()
        server.should_exit = True
        try:
            await projected  # raises what stopped the projector, if it failed
            if http.done():
                http.result()  # raises what stopped the web server, if it failed
        finally:
            await asyncio.gather(http, return_exceptions=True)
            await client.aclose()
            await producer.stop()
            sock.close()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
