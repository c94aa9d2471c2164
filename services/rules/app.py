"""The rules worker: a faust app wiring Kafka to the pure Engine.

Per message on care.events.v1 (or on the internal ticks topic):
  decode → (invalid: DLQ with the original bytes and a reason, then move on)
  → state from the table → Engine.evaluate → send escalations and wait for Kafka's acks
  → write the new state to the table.
Escalations are acknowledged by Kafka before the state that records them is written, and faust
flushes the table changelog before it commits offsets. A crash at any point therefore either
replays the event (the same deterministic escalation ids are sent again; notify de-duplicates)
or finds it in the state's seen ids (its escalations were already durable).

Deadlines: the timer looks at an in-memory index of each child's next deadline for the
partitions this worker owns, and sends a tick for that child to the ticks topic on the child's
own partition; the agent evaluates the tick like an event, so only the owner of a partition
ever changes its children's state and every deadline fires once.

A batch is acknowledged to faust only once it is wholly written. faust's `take_events`
acknowledges a batch in a `finally` when the code consuming it raises or is cancelled, and the
next commit then moves past events that were never evaluated. So a batch that fails is never
given back to faust: Kafka refusing a write (broker restarting, leader moving) is retried in
place with backoff, and anything else (a bug, a stop in the middle of a batch) ends the process
at once, before that `finally` can run; the restarted worker reads the batch again from the
committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.streams import _current_event  # the context faust tables read the partition from

from services.common import topics, tracing
from services.common.canary import is_canary
from services.common.dlq import TOMBSTONE_REASON, dlq_headers
from services.common.escalations import Escalation
from services.common.events import EventInvalid, parse_event
from services.common.kafka import retry_delay_s, transient
from services.common.partitioning import partition_for
from services.common.progress import Offsets, PartitionKey, StallDetector
from services.common.stallwatch import OffsetsProbe, StallWatch, exit_now
from services.common.unreadable import MARK
from services.rules import web
from services.rules.core import ConflictingDuplicate, Engine, Tick
from services.rules.metrics import RulesMetrics
from services.rules.settings import RulesSettings
from services.rules.state import ChildState
from services.rules.transport import RulesApp

log = logging.getLogger(__name__)

TICKS_SUFFIX = "-ticks"
REKEYED_SUFFIX = "-rekeyed"
"""Internal topic of records a producer put on another partition than their key's (see
services.common.partitioning); forwarded there in order, evaluated from there."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeadlineIndex:
    """child key → (next deadline, partition), for the partitions this worker owns."""

    def __init__(self) -> None:
        self.due: dict[bytes, tuple[datetime, int]] = {}
        self.ticking: dict[bytes, datetime] = {}

    def update(self, key: bytes, state: ChildState | None) -> None:
        self.ticking.pop(key, None)
        deadline = state.next_deadline() if state is not None else None
        if deadline is None or state is None or state.partition is None:
            self.due.pop(key, None)
        else:
            self.due[key] = (deadline, state.partition)

    def due_now(self, now: datetime, resend_after_s: float) -> list[tuple[bytes, int]]:
        """Keys whose deadline has come and that have no tick in flight (or one long lost)."""
        out: list[tuple[bytes, int]] = []
        for key, (when, partition) in self.due.items():
            sent = self.ticking.get(key)
            if when <= now and (sent is None or (now - sent).total_seconds() > resend_after_s):
                out.append((key, partition))
                self.ticking[key] = now
        return out


REKEYED_FROM = ("rekeyed-from-partition", "rekeyed-from-offset")


def rekeyed_headers(message: Any) -> list[tuple[str, bytes]]:
    """Where a forwarded record was first written on care.events.v1 (never evaluated)."""
    return list(
        zip(
            REKEYED_FROM,
            (str(message.partition).encode(), str(message.offset).encode()),
            strict=True,
        )
    )


def first_written(message: Any) -> tuple[str, int, int, list[tuple[str, bytes]]]:
    """(topic, partition, offset, own headers) of a record as its producer wrote it: a
    forwarded record is traced back to care.events.v1, so its dead letter can be replayed."""
    headers = list(message.headers or ())
    found = {name: value for name, value in headers if name in REKEYED_FROM}
    try:
        partition, offset = (int(found[name]) for name in REKEYED_FROM)
    except (KeyError, ValueError):
        return message.topic, message.partition, message.offset, headers
    own = [(name, value) for name, value in headers if name not in REKEYED_FROM]
    return topics.EVENTS, partition, offset, own


def build_app(
    settings: RulesSettings,
    engine: Engine,
    metrics: RulesMetrics,
    partitions: int,
    probe: OffsetsProbe,
    clock: Callable[[], datetime] = utc_now,
) -> faust.App:
    app = RulesApp(
        settings.rules_app_id,
        **settings.kafka().faust(),
        store=settings.rules_store,
        datadir=str(settings.rules_data_dir),
        topic_partitions=partitions,
        topic_replication_factor=settings.topic_replication,
        # faust's web server and its views (/table/..., /router/) stay off: services.rules.web
        # serves /metrics, /healthz and /readyz, and nothing else, on rules_host.
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        stream_wait_empty=False,
        # A killed worker's partitions move to the survivors after this long.
        broker_session_timeout=settings.rules_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.rules_session_timeout_s / 5),
    )
    ticks_topic = settings.rules_app_id + TICKS_SUFFIX
    rekeyed_topic = settings.rules_app_id + REKEYED_SUFFIX
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
        settings.rules_app_id + TICKS_SUFFIX,
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
    index = DeadlineIndex()
    rebuild = {"needed": True}

    def misplaced(message: Any) -> int | None:
        """The partition an event record belongs on, if its producer put it elsewhere."""
        if message.topic != topics.EVENTS or message.key is None:
            return None
        belongs = partition_for(message.key, partitions)
        return belongs if belongs != message.partition else None

    def dlq_record(
        message: Any, reason: str
    ) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        topic, partition, offset, own = (
            first_written(message)
            if message.topic == rekeyed_topic
            else (message.topic, message.partition, message.offset, message.headers)
        )
        return message.key, message.value or b"", dlq_headers(reason, topic, partition, offset, own)

    def stamp_accepted(out: list[Escalation], message: Any) -> list[Escalation]:
        """Escalations caused by an event carry the time Kafka accepted that event."""
        if not out or not message.timestamp:
            return out
        accepted = datetime.fromtimestamp(message.timestamp, UTC)
        return [e.model_copy(update={"event_accepted_at": accepted}) for e in out]

    def decode(message: Any) -> tuple[Any, str | None, str | None]:
        """(input, dlq code, dlq reason) for one message."""
        if message.topic == ticks_topic:
            return Tick(), None, None
        unreadable = dict(message.headers or ()).get(MARK)
        if unreadable is not None:  # a stand-in for a record that could not be decoded
            return None, "unreadable_record", unreadable.decode()
        if message.value is None:
            return None, "tombstone", TOMBSTONE_REASON
        # Plausible timestamps are judged against when Kafka took the record.
        taken = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
        try:
            item = parse_event(message.value or b"", now=taken)
        except EventInvalid as exc:
            code = "undecodable" if exc.errors[0].type == "json_invalid" else "invalid_event"
            return None, code, exc.reason
        if message.key != item.key.encode():
            return None, "key_mismatch", "message key is not '{agency_id}:{child_id}' of the event"
        if not is_canary(item.agency_id):
            metrics.events.labels(item.event_type).inc()
        return item, None, None

    async def process(batch: list[Any]) -> None:
        """Evaluate a batch, then: dead letters and escalations acked by Kafka, then state
        written, then the changelog flushed. Only after that does faust ack the batch."""
        states: dict[bytes, ChildState | None] = {}
        last_offset: dict[Any, int] = {}
        last_event: dict[bytes, Any] = {}
        escalations_out: list[Escalation] = []
        canaries: list[Escalation] = []
        traced: dict[str, str] = {}  # escalation id → the traceparent of its event
        dead: list[tuple[Any, str, str]] = []
        forward: list[tuple[Any, int]] = []
        now = clock()
        for ev in batch:
            message = ev.message
            last_offset[message.tp] = message.offset
            key: bytes | None = message.key
            belongs = misplaced(message)
            if belongs is not None:
                forward.append((message, belongs))
                continue
            try:
                item, code, reason = decode(message)
            except Exception as exc:  # a decoder bug must not block the partition either
                log.exception("decoding failed", extra={"reason": type(exc).__name__})
                item, code, reason = None, "internal_error", f"internal error: {type(exc).__name__}"
            if item is None:
                dead.append((message, code or "invalid_event", reason or ""))
                continue
            if key is None:
                continue
            if not isinstance(item, Tick) and is_canary(item.agency_id):
                # Evaluated on no state and kept nowhere: no timers, no counts, nothing grows.
                try:
                    _, out = engine.evaluate(None, item, now)
                except Exception as exc:  # the missing canary alert says so
                    log.exception("canary evaluation failed", extra={"reason": type(exc).__name__})
                    continue
                canaries += stamp_accepted(out, message)
                continue
            try:
                with metrics.evaluate_seconds.time():
                    if key in states:
                        state = states[key]
                    else:
                        raw = table.get(key)
                        state = ChildState.from_bytes(raw) if raw is not None else None
                    new, out = engine.evaluate(state, item, now)
            except ConflictingDuplicate:
                dead.append(
                    (
                        message,
                        "conflicting_duplicate",
                        "event_id was applied before with different content",
                    )
                )
                continue
            except Exception as exc:  # a bug must not block the partition; keep the bytes
                log.exception("evaluation failed", extra={"reason": type(exc).__name__})
                if not isinstance(item, Tick):
                    dead.append(
                        (message, "internal_error", f"internal error: {type(exc).__name__}")
                    )
                continue
            if new is state:
                if not isinstance(item, Tick):
                    metrics.duplicates.inc()
                if key not in states:
                    index.update(key, state)
                continue
            if new is not None:
                new.partition = message.partition
            states[key] = new
            last_event[key] = ev
            if not isinstance(item, Tick):
                out = stamp_accepted(out, message)
                parent = tracing.from_headers(message.headers)
                if parent is not None:
                    traced.update((e.escalation_id, parent) for e in out)
            escalations_out += out

        futures = []
        for message, belongs in forward:  # in source order: each partition's order is kept
            headers = [*(message.headers or []), *rekeyed_headers(message)]
            futures.append(
                await app.producer.send(
                    rekeyed_topic, message.key, message.value, belongs, None, headers
                )
            )
            metrics.rekeyed.inc()
        for message, code, reason in dead:
            k, v, headers = dlq_record(message, reason)
            futures.append(await app.producer.send(topics.EVENTS_DLQ, k, v, None, None, headers))
            metrics.dlq.labels(code).inc()
            log.warning(
                "event sent to dead-letter topic",
                extra={
                    "reason": code,
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                },
            )
        for e in escalations_out + canaries:
            trace = tracing.child_headers(traced.get(e.escalation_id), e.escalation_id)
            futures.append(
                await app.producer.send(
                    topics.ESCALATIONS, e.key.encode(), e.to_bytes(), None, None, trace or None
                )
            )
        for fut in futures:
            await fut
        for e in escalations_out:
            metrics.escalations.labels(e.rule_id, e.severity, e.status).inc()

        for key, state in states.items():
            if state is None:
                continue
            # The table (and its RocksDB store) take the partition from the current event.
            token = _current_event.set(weakref.ref(last_event[key]))
            try:
                table[key] = state.to_bytes()
            finally:
                _current_event.reset(token)
            index.update(key, state)
        if states:
            await app.producer.flush()
        for tp, offset in last_offset.items():
            try:
                behind = app.consumer.highwater(tp) - offset - 1
            except Exception:  # highwater unknown before the first fetch response
                continue
            metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, behind))

    retrying = {"now": False}
    fault = {"paused": False}

    async def process_wholly(batch: list[Any]) -> None:
        """Process the batch until it is written; never return or raise with it half done."""
        attempt = 0
        try:
            while True:
                try:
                    await process(batch)
                    return
                except Exception as exc:
                    if not transient(exc):
                        raise
                    attempt += 1
                    retrying["now"] = True
                    metrics.batch_retries.inc()
                    log.warning(
                        "Kafka refused a write; trying the batch again",
                        extra={"reason": type(exc).__name__, "attempt": attempt},
                    )
                    await asyncio.sleep(retry_delay_s(attempt))
        except BaseException as exc:
            stopping = isinstance(exc, asyncio.CancelledError) and app.should_stop
            log.error(
                "batch not completed; exiting so that it is read again after a restart",
                extra={"reason": type(exc).__name__, "count": len(batch)},
            )
            exit_now(0 if stopping else 1)
            raise  # only reached when exit_now is replaced in a test
        finally:
            retrying["now"] = False

    @app.agent(events_and_ticks, concurrency=1)
    async def evaluate(stream: Any) -> None:
        async for batch in stream.take_events(
            settings.rules_batch_max, within=settings.rules_batch_within_s
        ):
            await process_wholly(batch)

    consumed = {topics.EVENTS, ticks_topic, rekeyed_topic}
    watch = StallWatch(
        group=settings.rules_app_id,
        probe=probe,
        detector=StallDetector(settings.stall_timeout_s),
        gauge=metrics.stalled,
        interval_s=settings.stall_check_interval_s,
        exit_grace_s=settings.stall_exit_grace_s,
    )

    def owned() -> set[PartitionKey]:
        return {
            (tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in consumed
        }

    def counting() -> bool:
        """Stall time counts only while the worker could be making progress. faust stays
        `rebalancing` until table recovery ends, so a recovery counts (by its own progress)."""
        if retrying["now"]:
            return False
        recovery: Any = getattr(app.tables, "recovery", None)
        return bool(recovery is not None and recovery.in_recovery) or not app.rebalancing

    def recovering() -> dict[PartitionKey, Offsets] | None:
        """While faust recovers the table (every stream partition is paused meanwhile): how
        far it has read each changelog partition and how far it must read."""
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]  # on TableManager, not its ABC
        if not recovery.in_recovery:
            return None
        progress: dict[PartitionKey, Offsets] = {}
        for tp, highwater in recovery.active_highwaters.items():
            if highwater is None:
                continue
            offset = recovery.active_offsets.get(tp)
            progress[(tp.topic, tp.partition)] = Offsets(
                -1 if offset is None else int(offset), int(highwater)
            )
        return progress

    held = app.held

    def excused() -> frozenset[PartitionKey]:
        """Held partitions (a record on them cannot be read): a restart would not help."""
        return held.keep_only(owned(), metrics.unreadable)

    @app.task  # type: ignore[untyped-decorator]
    async def watch_progress() -> None:
        await watch.run(owned, counting, excused, recovering=recovering)

    async def on_rebalance(_sender: Any, *_args: Any, signal: Any, **_kwargs: Any) -> None:  # noqa: ARG001
        rebuild["needed"] = True

    app.on_rebalance_complete.connect(on_rebalance)  # type: ignore[arg-type]  # async receiver

    def rebuild_index() -> None:
        actives = {
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.EVENTS
        }
        index.due.clear()
        index.ticking.clear()
        for key, raw in table.items():
            if raw is None:
                continue
            try:
                state = ChildState.from_bytes(raw)
            except ValueError as exc:  # unreadable state: its next event goes to the DLQ
                log.error("stored state unreadable", extra={"reason": type(exc).__name__})
                continue
            if state.partition in actives:
                index.update(key, state)

    @app.timer(interval=settings.tick_interval_s)  # type: ignore[untyped-decorator]
    async def check_deadlines() -> None:
        if settings.stall_fault_file is not None and settings.stall_fault_file.exists():
            if not fault["paused"]:
                log.warning("fault injection: fetching paused")
            fault["paused"] = True
            app.consumer.pause_partitions(app.consumer.assignment())
        if app.rebalancing:
            return
        if rebuild["needed"]:
            rebuild["needed"] = False
            rebuild_index()
        now = clock()
        for key, partition in index.due_now(
            now, resend_after_s=max(30.0, 6 * settings.tick_interval_s)
        ):
            await ticks.send(key=key, value=b"tick", partition=partition)
        metrics.deadlines_tracked.set(len(index.due))

    def healthz() -> tuple[bool, str]:
        if not watch.healthy:
            return False, "unhealthy: a partition stalled; restarting"
        return True, "ok"

    def readyz() -> tuple[bool, str]:
        if not watch.healthy:
            return False, "not ready: a partition stalled; restarting"
        unreadable = held.readiness()
        if unreadable is not None:
            return unreadable
        if app.rebalancing or not app.consumer.assignment():
            return False, "not ready: rebalancing or no partitions assigned"
        return True, "ready"

    @app.task  # type: ignore[untyped-decorator]
    async def serve_health() -> None:
        await web.serve(
            web.health_app(metrics.registry, healthz, readyz),
            settings.rules_host,
            settings.rules_port,
        )

    return app
