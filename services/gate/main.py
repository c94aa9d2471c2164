"""Start the gate: wait for Kafka, check care.events.v1 and care.events.dlq, then consume every
agency input topic (a pattern subscription: an agency's topic created later is picked up
within `CAREALERT_GATE_TOPIC_REFRESH_S`) and serve /metrics, /healthz and /readyz.

    python -m services.gate.main        (or `carealert gate`)

Exit status: 0 after SIGTERM/SIGINT, 1 when the loop failed (nothing past the last acknowledged
batch is committed; a restart reads on from there), 2 for invalid settings, 3 when Kafka cannot
be reached or refuses the gate what it needs at start (see docs/agency-topics.md for its ACLs),
75 after a stalled partition (services.common.stallwatch).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.common import (
    logs,
    topics,
    web,  # the workers' /metrics, /healthz, /readyz server
)
from services.common.fetching import disable_codecs
from services.common.kafka import (
    KafkaClient,
    KafkaUnavailable,
    ensure_topics,
    partition_counts,
    wait_for_kafka,
)
from services.common.progress import StallDetector
from services.common.signals import stop_on_signals
from services.common.stallwatch import KafkaOffsetsProbe, StallWatch
from services.common.unreadable import Held
from services.gate.health import Health
from services.gate.metrics import GateMetrics
from services.gate.settings import GateSettings
from services.gate.worker import Gate

log = logging.getLogger(__name__)

CLIENT_ID = "carealert-gate"


def connect(settings: GateSettings) -> tuple[KafkaClient, int]:
    """The Kafka client once the brokers answer, and the partition count of care.events.v1.
    The two topics the gate writes are created if missing and the gate may create them (with
    ACLs it may not: ingest or rules create them). Blocking."""
    kafka = settings.kafka()
    wait_for_kafka(kafka, client_id=CLIENT_ID, timeout_s=settings.kafka_wait_seconds)
    wanted = [topics.EVENTS, topics.EVENTS_DLQ]
    try:
        ensure_topics(
            kafka,
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
            names=wanted,
            client_id=CLIENT_ID,
        )
        counts = partition_counts(kafka, wanted, client_id=CLIENT_ID)
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"Kafka refused the gate {', '.join(wanted)} ({type(exc).__name__}): check that"
            " they exist and the gate's ACLs (docs/agency-topics.md)"
        ) from exc
    missing = [name for name, count in counts.items() if not count]
    if missing:
        raise KafkaUnavailable(f"the gate cannot see {', '.join(missing)} (missing, or no ACL)")
    return kafka, counts[topics.EVENTS]


def input_consumer(settings: GateSettings, kafka: KafkaClient) -> AIOKafkaConsumer:
    """Every agency input topic (subscribed after start), in the gate's group, committed
    records only, offsets committed by the loop. A new agency's topic is read from its start."""
    return AIOKafkaConsumer(
        **kafka.aiokafka(
            client_id=CLIENT_ID,
            group_id=settings.gate_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=int(settings.gate_topic_refresh_s * 1000),
            session_timeout_ms=int(settings.gate_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.gate_session_timeout_s * 1000 / 5),
        )
    )


def forward_producer(kafka: KafkaClient) -> AIOKafkaProducer:
    """Every write waits for all in-sync replicas; retries do not duplicate."""
    return AIOKafkaProducer(
        **kafka.aiokafka(client_id=CLIENT_ID, acks="all", enable_idempotence=True)
    )


def stall_watch(settings: GateSettings, kafka: KafkaClient, metrics: GateMetrics) -> StallWatch:
    return StallWatch(
        group=settings.gate_group_id,
        probe=KafkaOffsetsProbe(kafka.kafka_python(client_id=f"{CLIENT_ID}-stall")),
        detector=StallDetector(settings.stall_timeout_s),
        gauge=metrics.stalled,
        interval_s=settings.stall_check_interval_s,
        exit_grace_s=settings.stall_exit_grace_s,
    )


async def serve(settings: GateSettings) -> None:
    """Run until SIGTERM/SIGINT (returns) or until the loop or the stall watch fails (raises
    its exception); stops every part either way."""
    kafka, partitions = await asyncio.to_thread(connect, settings)
    metrics = GateMetrics(CollectorRegistry())
    held = Held("gate")
    producer = forward_producer(kafka)
    consumer = input_consumer(settings, kafka)
    gate = Gate(
        consumer, producer, metrics, held, partitions=partitions, batch_max=settings.gate_batch_max
    )
    health = Health(consumer, gate, stall_watch(settings, kafka, metrics), held, metrics)
    app = web.health_app(metrics.registry, health.healthz, health.readyz)
    runner = await web.serve(app, settings.gate_host, settings.gate_port)
    stop = stop_on_signals()
    tasks: list[asyncio.Task[None]] = []
    try:
        await producer.start()
        await consumer.start()
        consumer.subscribe(pattern=topics.AGENCY_INPUT_PATTERN)
        health.started = True
        log.info("gate started", extra={"port": settings.gate_port, "count": partitions})
        tasks = [asyncio.create_task(gate.run()), asyncio.create_task(health.watch_progress())]
        await until_stopped(stop, tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await quietly(consumer.stop)
        await quietly(producer.stop)
        await runner.cleanup()


async def quietly(stop: Callable[[], Awaitable[None]]) -> None:
    """Stop a Kafka client without letting its failure hide why we stop: a client that never
    started, or one whose broker is gone (aiokafka's fetcher then lets its own task's
    cancellation escape from `stop`)."""
    try:
        await stop()
    except (Exception, asyncio.CancelledError) as exc:
        log.warning("a Kafka client did not stop cleanly", extra={"reason": type(exc).__name__})


async def until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Returns when `stop` is set or a task ends; raises the exception of one that failed."""
    waiter = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    for task in done:
        if task is not waiter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if stop.is_set():
        log.info("gate stopping")


def run(settings: GateSettings) -> None:
    logs.configure("gate", settings.log_level)
    if settings.test_disabled_codecs:
        disable_codecs(settings.test_disabled_codecs.split(","))
    asyncio.run(serve(settings))


def main() -> int:
    """`carealert gate`: the exit status (see the module docstring)."""
    try:
        settings = GateSettings()
    except ValidationError as exc:
        # Name the variable and the problem, never the value (it may be a secret).
        for err in exc.errors(include_input=False, include_url=False):
            name = "CAREALERT_" + ".".join(str(p) for p in err["loc"]).upper()
            sys.stderr.write(f"carealert gate: {name}: {err['msg']}\n")
        return 2
    try:
        run(settings)
    except KafkaUnavailable as exc:
        sys.stderr.write(f"carealert gate: {exc}\n")
        return 3
    except Exception as exc:
        log.exception("gate stopped: the loop failed", extra={"reason": type(exc).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
