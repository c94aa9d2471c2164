"""The rules worker's wiring: the faust app, its topics and state table, and what runs on them.

One agent evaluates care.events.v1, the ticks topic and the rekeyed topic in batches
(services.rules.worker); a timer sends the ticks of deadlines that have come
(services.rules.deadlines); tasks run the stall watch and serve /metrics, /healthz and /readyz
(services.rules.health).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TableT, TopicT

from services.common import topics
from services.common.dlq import MAX_RECORD_BYTES
from services.common.progress import StallDetector
from services.common.stallwatch import OffsetsProbe, StallWatch
from services.rules.core import Engine
from services.rules.deadlines import DeadlineIndex, Deadlines
from services.rules.health import Health
from services.rules.metrics import RulesMetrics
from services.rules.settings import RulesSettings
from services.rules.transport import RulesApp
from services.rules.worker import RulesWorker

TICKS_SUFFIX = "-ticks"
REKEYED_SUFFIX = "-rekeyed"
"""Internal topic of records a producer put on another partition than their key's (see
services.common.partitioning); forwarded there in order, evaluated from there."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def faust_app(settings: RulesSettings, partitions: int) -> RulesApp:
    return RulesApp(
        settings.rules_app_id,
        **settings.kafka().faust(),
        store=settings.rules_store,
        datadir=str(settings.rules_data_dir),
        topic_partitions=partitions,
        topic_replication_factor=settings.topic_replication,
        # faust's web server and its views (/table/..., /router/) stay off: services.common.web
        # serves /metrics, /healthz and /readyz, and nothing else, on rules_host.
        web_enabled=False,
        producer_acks=-1,
        # The largest record it sends; the worker measures what it would write against it.
        producer_max_request_size=MAX_RECORD_BYTES,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        stream_wait_empty=False,
        # A killed worker's partitions move to the survivors after this long.
        broker_session_timeout=settings.rules_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.rules_session_timeout_s / 5),
    )


def stall_watch(settings: RulesSettings, probe: OffsetsProbe, metrics: RulesMetrics) -> StallWatch:
    return StallWatch(
        group=settings.rules_app_id,
        probe=probe,
        detector=StallDetector(settings.stall_timeout_s),
        gauge=metrics.stalled,
        interval_s=settings.stall_check_interval_s,
        exit_grace_s=settings.stall_exit_grace_s,
    )


def topics_and_table(
    app: RulesApp, partitions: int, ticks_topic: str, rekeyed_topic: str
) -> tuple[TopicT, TopicT, TableT[bytes, bytes | None]]:
    """What the agent reads (events, ticks, rekeyed events), the ticks topic it sends to, and
    the child-state table (changelog `<app>-child-state-changelog`)."""
    events_and_ticks = app.topic(
        topics.EVENTS,
        ticks_topic,
        rekeyed_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    ticks = app.topic(
        ticks_topic,
        partitions=partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.Table(
        "child-state",
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
    )
    return events_and_ticks, ticks, table


def build_app(
    settings: RulesSettings,
    engine: Engine,
    metrics: RulesMetrics,
    partitions: int,
    probe: OffsetsProbe,
    clock: Callable[[], datetime] = utc_now,
) -> faust.App:
    app = faust_app(settings, partitions)
    ticks_topic = settings.rules_app_id + TICKS_SUFFIX
    rekeyed_topic = settings.rules_app_id + REKEYED_SUFFIX
    events_and_ticks, ticks, table = topics_and_table(app, partitions, ticks_topic, rekeyed_topic)
    index = DeadlineIndex()
    worker = RulesWorker(
        app,
        engine,
        metrics,
        table,
        index,
        partitions=partitions,
        ticks_topic=ticks_topic,
        rekeyed_topic=rekeyed_topic,
        clock=clock,
    )
    deadlines = Deadlines(
        app, table, ticks, index, metrics, tick_interval_s=settings.tick_interval_s, clock=clock
    )
    health = Health(
        app,
        stall_watch(settings, probe, metrics),
        metrics,
        consumed={topics.EVENTS, ticks_topic, rekeyed_topic},
        retrying=lambda: worker.retrying,
        fault_file=settings.stall_fault_file,
    )

    # faust names agents and timers after these functions (in its logs), hence closures here.
    @app.agent(events_and_ticks, concurrency=1)
    async def evaluate(stream: Any) -> None:
        within = settings.rules_batch_within_s
        async for batch in stream.take_events(settings.rules_batch_max, within=within):
            await worker.process_wholly(batch)

    @app.task  # type: ignore[untyped-decorator]
    async def watch_progress() -> None:
        await health.watch_progress()

    app.on_rebalance_complete.connect(deadlines.on_rebalance)  # type: ignore[arg-type]  # async receiver

    @app.timer(interval=settings.tick_interval_s)  # type: ignore[untyped-decorator]
    async def check_deadlines() -> None:
        health.pause_if_fault_injected()
        await deadlines.send_due()

    @app.task  # type: ignore[untyped-decorator]
    async def serve_health() -> None:
        await health.serve(settings.rules_host, settings.rules_port)

    return app
