"""Start notify: check the routing and templates, load the ledger from Kafka, then run the
consumer loop and the HTTP API in one event loop."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.common import logs, topics
from services.common.asgi import Server
from services.common.fetching import disable_codecs
from services.common.kafka import KafkaClient, ensure_topics
from services.common.progress import PartitionKey, StallDetector
from services.common.secrets import weakness
from services.common.signals import stop_on_signals
from services.common.stallwatch import KafkaOffsetsProbe, StallWatch
from services.common.unreadable import Held
from services.notify.api import create_api
from services.notify.canary import send_canaries
from services.notify.channels.base import Channel
from services.notify.channels.email import SmtpChannel, SmtpConfig, SmtpSessions
from services.notify.channels.http import HttpPools
from services.notify.channels.sms import SmsChannel
from services.notify.channels.webhook import WebhookChannel
from services.notify.ledger import Ledger, wait_stopped
from services.notify.metrics import NotifyMetrics
from services.notify.pipeline import Notifier
from services.notify.retry import RetryPolicy
from services.notify.routing import Routing
from services.notify.settings import NotifySettings
from services.notify.templates import Templates
from services.notify.tenancy import Tenancy, load_tenancy
from services.notify.worker import consume

log = logging.getLogger(__name__)


class MissingSecret(ValueError):
    pass


def webhook_secrets(routing: Routing, settings: NotifySettings) -> dict[str, SecretStr]:
    """Every secret_env named in routing.yaml must be set: checked at start, not at 3 a.m."""
    out: dict[str, SecretStr] = {}
    for spec in routing.all_receivers():
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
    """Check the policy files and secrets first (a bad file or a missing secret stops notify
    before it touches Kafka), then start; runs until SIGTERM/SIGINT or until a part fails (its
    exception raised here), and stops every part either way."""
    tenancy = load_tenancy(settings)
    templates = Templates(settings.policy_dir / "templates")
    secrets = webhook_secrets(tenancy.routing, settings)
    kafka = await connect_kafka(settings)
    metrics = NotifyMetrics(CollectorRegistry())
    producer = await start_producer(kafka)
    ledger = Ledger(
        kafka, producer, sent_topic(settings), open_topic(settings), metrics.ledger_unreadable
    )
    ready = {"ready": False}
    watch = stall_watch(settings, kafka, metrics)
    held = Held("notify")
    api = create_api(
        settings,
        ledger,
        metrics,
        ready,
        tenancy,
        healthy=lambda: watch.healthy,
        unready=held.readiness,
    )
    server = http_server(settings, api)
    web = asyncio.create_task(server.serve())
    client = http_client()
    pools = HttpPools(settings.notify_receiver_concurrency)
    smtp = SmtpSessions(smtp_config(settings), settings.notify_receiver_concurrency)
    notifier = make_notifier(
        settings,
        tenancy,
        templates,
        channels(settings, pools, smtp, secrets),
        ledger,
        producer,
        metrics,
    )
    consumer = escalations_consumer(settings, kafka)
    stop = stop_on_signals()
    tasks: list[asyncio.Task[None]] = []
    try:
        await ledger.load()
        await consumer.start()
        ready["ready"] = True
        log.info("notify ready", extra={"port": settings.notify_port, "count": len(ledger.sent)})
        tasks = background_tasks(settings, ledger, notifier, consumer, watch, held, client, metrics)
        await until_stopped(stop, web, tasks)
    finally:
        try:
            await shut_down(tasks, server, web, consumer, ledger, producer, client)
        finally:
            await pools.close()
            await smtp.close()


# --- Kafka: the client, the ledger's topics, the producer, the escalations consumer ------------


def sent_topic(settings: NotifySettings) -> str:
    return f"{settings.notify_group_id}-sent"


def open_topic(settings: NotifySettings) -> str:
    return f"{settings.notify_group_id}-open"


async def connect_kafka(settings: NotifySettings) -> KafkaClient:
    """The Kafka client once the broker answers, with the ledger's compacted topics created."""
    kafka = await asyncio.to_thread(settings.connected_kafka, "carealert-notify")
    await asyncio.to_thread(
        ensure_topics,
        kafka,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
        names=[sent_topic(settings), open_topic(settings), topics.SILENCES],
        compacted=True,
    )
    return kafka


MAX_BATCH_BYTES = 512 * 1024


async def start_producer(kafka: KafkaClient) -> AIOKafkaProducer:
    """The one producer notify writes with (notification records, ledger, acks, dead letters):
    every write waits for all in-sync replicas, and retries do not duplicate. Batches up to
    MAX_BATCH_BYTES per partition: the producer has one request in flight per broker, so under a
    burst 16 KB batches (the default, about ten open entries) made every write queue behind
    many round trips."""
    producer = AIOKafkaProducer(
        **kafka.aiokafka(acks="all", enable_idempotence=True, max_batch_size=MAX_BATCH_BYTES)
    )
    await producer.start()
    return producer


def escalations_consumer(settings: NotifySettings, kafka: KafkaClient) -> AIOKafkaConsumer:
    """care.escalations.v1 in notify's group, committed records only, offsets committed by the
    consumer loop (services.notify.worker), never automatically."""
    return AIOKafkaConsumer(
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


# --- delivery: channels and the Notifier ---------------------------------------------------------


def http_client() -> httpx.AsyncClient:
    """The HTTP client of the canary (the channels have their own pools, HttpPools)."""
    # A small pool: httpcore scans its connections on every request.
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))


def smtp_config(settings: NotifySettings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        sender=settings.smtp_sender,
    )


def channels(
    settings: NotifySettings,
    pools: HttpPools,
    smtp: SmtpSessions,
    secrets: dict[str, SecretStr],
) -> dict[str, Channel]:
    """Each channel a receiver may name in routing.yaml, by name."""
    return {
        "email": SmtpChannel(smtp_config(settings), smtp),
        "webhook": WebhookChannel(pools, secrets),
        "sms": SmsChannel(pools),
    }


def make_notifier(
    settings: NotifySettings,
    tenancy: Tenancy,
    templates: Templates,
    channels: dict[str, Channel],
    ledger: Ledger,
    producer: AIOKafkaProducer,
    metrics: NotifyMetrics,
) -> Notifier:
    return Notifier(
        routing=tenancy.routing,
        templates=templates,
        channels=channels,
        ledger=ledger,
        people=tenancy.people,
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


# --- HTTP: the API's server ---------------------------------------------------------------------


def http_server(settings: NotifySettings, api: FastAPI) -> Server:
    """The API on notify_host:notify_port (TLS if configured), without uvicorn's own logging
    setup or access log."""
    return Server(
        uvicorn.Config(
            api,
            host=settings.notify_host,
            port=settings.notify_port,
            log_config=None,
            access_log=False,
            **settings.uvicorn_tls(),  # type: ignore[arg-type]  # str paths
        )
    )


# --- the stall watch ----------------------------------------------------------------------------


def stall_watch(settings: NotifySettings, kafka: KafkaClient, metrics: NotifyMetrics) -> StallWatch:
    return StallWatch(
        group=settings.notify_group_id,
        probe=KafkaOffsetsProbe(kafka.kafka_python(client_id="carealert-notify-stall")),
        detector=StallDetector(settings.stall_timeout_s),
        gauge=metrics.stalled,
        interval_s=settings.stall_check_interval_s,
        exit_grace_s=settings.stall_exit_grace_s,
    )


async def watch_progress(
    watch: StallWatch, notifier: Notifier, consumer: AIOKafkaConsumer, held: Held
) -> None:
    """The stall watch on the partitions the consumer owns, counting only while it owns some,
    excusing those waiting on purpose (see `excused`)."""
    await watch.run(
        owned=lambda: owned(consumer),
        counting=lambda: bool(consumer.assignment()),
        excused=lambda: excused(notifier, held, owned(consumer)),
    )


def owned(consumer: AIOKafkaConsumer) -> set[PartitionKey]:
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


def excused(notifier: Notifier, held: Held, owned: set[PartitionKey]) -> set[PartitionKey]:
    """Partitions whose commits wait on a retry, on purpose, and partitions held because a
    record on them cannot be read (a restart would not help)."""
    held_now = held.keep_only(owned, notifier.metrics.unreadable)
    return {(topics.ESCALATIONS, p) for p in notifier.recorder.retrying} | held_now


# --- running and stopping -----------------------------------------------------------------------


def background_tasks(
    settings: NotifySettings,
    ledger: Ledger,
    notifier: Notifier,
    consumer: AIOKafkaConsumer,
    watch: StallWatch,
    held: Held,
    client: httpx.AsyncClient,
    metrics: NotifyMetrics,
) -> list[asyncio.Task[None]]:
    """Following the ledger, the consumer loop, the stall watch and the canary, each a task."""
    work = [
        ledger.follow(),
        consume_escalations(settings, notifier, consumer, held),
        watch_progress(watch, notifier, consumer, held),
    ]
    canary = canaries(settings, client, metrics)
    if canary is not None:
        work.append(canary)
    return [asyncio.create_task(w) for w in work]


def consume_escalations(
    settings: NotifySettings, notifier: Notifier, consumer: AIOKafkaConsumer, held: Held
) -> Coroutine[Any, Any, None]:
    return consume(
        notifier,
        consumer,
        settings.notify_max_in_flight,
        settings.notify_tick_s,
        settings.notify_fault_file,
        settings.stall_fault_file,
        held,
    )


def canaries(
    settings: NotifySettings, client: httpx.AsyncClient, metrics: NotifyMetrics
) -> Coroutine[Any, Any, None] | None:
    """Proof of life through ingest, if configured (an ingest URL and a canary API key)."""
    if not settings.canary_ingest_url or settings.canary_api_key is None:
        return None
    return send_canaries(
        client,
        settings.canary_ingest_url,
        settings.canary_api_key,
        settings.canary_interval_s,
        metrics,
    )


async def until_stopped(
    stop: asyncio.Event, web: asyncio.Task[None], tasks: list[asyncio.Task[None]]
) -> None:
    """Returns when `stop` is set or the HTTP server or a task ends; raises the exception of
    one that failed."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, web, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in done:
        if t is not waiter and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


async def shut_down(
    tasks: list[asyncio.Task[None]],
    server: Server,
    web: asyncio.Task[None],
    consumer: AIOKafkaConsumer,
    ledger: Ledger,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
) -> None:
    """In this order: the background tasks cancelled and awaited, the HTTP server stopped,
    then the consumer, the ledger's reader and the producer, the HTTP client last."""
    await wait_stopped(tasks)
    server.should_exit = True
    await asyncio.gather(web, return_exceptions=True)
    await consumer.stop()
    await ledger.stop()
    await producer.stop()
    await client.aclose()


def run(settings: NotifySettings) -> None:
    logs.configure("notify", settings.log_level)
    if settings.test_disabled_codecs:
        disable_codecs(settings.test_disabled_codecs.split(","))
    asyncio.run(serve(settings))
