"""Start notify: check the routing and templates, load the ledger from Kafka, then run the
consumer loop and the HTTP API in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.common import logs, topics
from services.common.fetching import disable_codecs
from services.common.kafka import ensure_topics
from services.common.progress import PartitionKey, StallDetector
from services.common.secrets import weakness
from services.common.stallwatch import KafkaOffsetsProbe, StallWatch
from services.common.unreadable import Held
from services.notify.api import create_api
from services.notify.canary import send_canaries
from services.notify.channels.base import Channel
from services.notify.channels.email import SmtpChannel, SmtpConfig
from services.notify.channels.sms import SmsChannel
from services.notify.channels.webhook import WebhookChannel
from services.notify.config import load_routing
from services.notify.ledger import Ledger, wait_stopped
from services.notify.metrics import NotifyMetrics
from services.notify.pipeline import Notifier
from services.notify.retry import RetryPolicy
from services.notify.routing import Routing
from services.notify.settings import NotifySettings
from services.notify.templates import Templates
from services.notify.worker import consume

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn inside our own event loop: the worker, not uvicorn, owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MissingSecret(ValueError):
    pass


def webhook_secrets(routing: Routing, settings: NotifySettings) -> dict[str, SecretStr]:
    """Every secret_env named in routing.yaml must be set: checked at start, not at 3 a.m."""
    out: dict[str, SecretStr] = {}
    for spec in routing.receivers.values():
        env = spec.webhook.secret_env if spec.webhook else None
        if not env:
            continue
        if env == "CAREALERT_WEBHOOK_SECRET" and settings.webhook_secret is not None:
            out[env] = settings.webhook_secret
        elif os.environ.get(env):
            problem = weakness(os.environ[env])
            if problem and settings.env != "demo":
                raise MissingSecret(f"receiver {spec.name}: {env} {problem}")
            out[env] = SecretStr(os.environ[env])
        else:
            raise MissingSecret(f"receiver {spec.name}: environment variable {env} is not set")
    return out


async def serve(settings: NotifySettings) -> None:
    routing = load_routing(settings.policy_dir / "routing.yaml")
    templates = Templates(settings.policy_dir / "templates")
    secrets = webhook_secrets(routing, settings)
    sent_topic = f"{settings.notify_group_id}-sent"
    open_topic = f"{settings.notify_group_id}-open"
    kafka = await asyncio.to_thread(settings.connected_kafka, "carealert-notify")
    await asyncio.to_thread(
        ensure_topics,
        kafka,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
        names=[sent_topic, open_topic],
        compacted=True,
    )
    metrics = NotifyMetrics(CollectorRegistry())
    producer = AIOKafkaProducer(**kafka.aiokafka(acks="all", enable_idempotence=True))
    await producer.start()
    ledger = Ledger(kafka, producer, sent_topic, open_topic, metrics.ledger_unreadable)
    ready = {"ready": False}
    watch = StallWatch(
        group=settings.notify_group_id,
        probe=KafkaOffsetsProbe(kafka.kafka_python(client_id="carealert-notify-stall")),
        detector=StallDetector(settings.stall_timeout_s),
        gauge=metrics.stalled,
        interval_s=settings.stall_check_interval_s,
        exit_grace_s=settings.stall_exit_grace_s,
    )
    held = Held("notify")
    api = create_api(
        settings, ledger, metrics, ready, healthy=lambda: watch.healthy, unready=held.readiness
    )
    server = _Server(
        uvicorn.Config(
            api,
            host=settings.notify_host,
            port=settings.notify_port,
            log_config=None,
            access_log=False,
            **settings.uvicorn_tls(),  # type: ignore[arg-type]  # str paths
        )
    )
    web = asyncio.create_task(server.serve())
    # A small pool: httpcore scans its connections on every request.
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)
    )
    channels: dict[str, Channel] = {
        "email": SmtpChannel(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=settings.smtp_password,
                sender=settings.smtp_sender,
            )
        ),
        "webhook": WebhookChannel(client, secrets),
        "sms": SmsChannel(client),
    }
    notifier = Notifier(
        routing=routing,
        templates=templates,
        channels=channels,
        ledger=ledger,
        producer=producer,
        metrics=metrics,
        retry=RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
        ),
        ack_secret=settings.ack_secret.get_secret_value(),
        public_url=settings.notify_public_url,
        ack_ttl_s=settings.ack_token_ttl_s,
    )
    consumer = AIOKafkaConsumer(
        topics.ESCALATIONS,
        **kafka.aiokafka(
            group_id=settings.notify_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A transactional producer's aborted records are never escalations.
            isolation_level="read_committed",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        await ledger.load()
        await consumer.start()
        ready["ready"] = True
        log.info("notify ready", extra={"port": settings.notify_port, "count": len(ledger.sent)})
        tasks = [
            asyncio.create_task(ledger.follow()),
            asyncio.create_task(
                consume(
                    notifier,
                    consumer,
                    settings.notify_max_in_flight,
                    settings.notify_tick_s,
                    settings.notify_fault_file,
                    settings.stall_fault_file,
                    held,
                )
            ),
            asyncio.create_task(
                watch.run(
                    owned=lambda: owned(consumer),
                    counting=lambda: bool(consumer.assignment()),
                    excused=lambda: excused(notifier, held, owned(consumer)),
                )
            ),
        ]
        if settings.canary_ingest_url and settings.canary_api_key is not None:
            tasks.append(
                asyncio.create_task(
                    send_canaries(
                        client,
                        settings.canary_ingest_url,
                        settings.canary_api_key,
                        settings.canary_interval_s,
                        metrics,
                    )
                )
            )
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, web, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not waiter and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        await wait_stopped(tasks)
        server.should_exit = True
        await asyncio.gather(web, return_exceptions=True)
        await consumer.stop()
        await ledger.stop()
        await producer.stop()
        await client.aclose()


def owned(consumer: AIOKafkaConsumer) -> set[PartitionKey]:
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


def excused(notifier: Notifier, held: Held, owned: set[PartitionKey]) -> set[PartitionKey]:
    """Partitions whose commits wait on a retry, on purpose, and partitions held because a
    record on them cannot be read (a restart would not help)."""
    held_now = held.keep_only(owned, notifier.metrics.unreadable)
    return {(topics.ESCALATIONS, p) for p in notifier.recorder.retrying} | held_now


def run(settings: NotifySettings) -> None:
    logs.configure("notify", settings.log_level)
    if settings.test_disabled_codecs:
        disable_codecs(settings.test_disabled_codecs.split(","))
    asyncio.run(serve(settings))
