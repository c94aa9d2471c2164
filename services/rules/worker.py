"""The rules worker's batches, from care.events.v1, the ticks topic and the rekeyed topic.

Per record: forwarded to the rekeyed topic if its producer put it on another partition than its
key's; else decoded (invalid: DLQ with the original bytes and a reason, then move on) → state
from the table → Engine.evaluate. Then, for the whole batch: forwarded records, dead letters and
escalations sent and acknowledged by Kafka → new states written to the table → changelog
flushed. Escalations are acknowledged by Kafka before the state that records them is written,
and faust flushes the table changelog before it commits offsets. A crash at any point therefore
either replays the event (the same deterministic escalation ids are sent again; notify
de-duplicates) or finds it in the state's seen ids (its escalations were already durable).

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faust.streams import _current_event  # the context faust tables read the partition from
from faust.types import TableT

from services.common import topics, tracing
from services.common.canary import is_canary
from services.common.escalations import Escalation
from services.common.events import EventBase
from services.common.kafka import retry_delay_s, transient
from services.common.stallwatch import exit_now
from services.rules.core import ConflictingDuplicate, Engine, Input, Tick
from services.rules.deadlines import DeadlineIndex
from services.rules.metrics import RulesMetrics
from services.rules.records import (
    Rejected,
    decode,
    dlq_record,
    misplaced,
    rekeyed_headers,
    stamp_accepted,
)
from services.rules.state import ChildState
from services.rules.transport import RulesApp

log = logging.getLogger(__name__)


@dataclass
class Writes:
    """What an evaluated batch owes Kafka, gathered before any of it is written."""

    forward: list[tuple[Any, int]] = field(default_factory=list)  # (record, where it belongs)
    dead: list[tuple[Any, Rejected]] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    canaries: list[Escalation] = field(default_factory=list)
    traced: dict[str, str] = field(default_factory=dict)  # escalation id → its event's traceparent
    states: dict[bytes, ChildState | None] = field(default_factory=dict)
    last_event: dict[bytes, Any] = field(default_factory=dict)  # the state is written under it
    last_offset: dict[Any, int] = field(default_factory=dict)


class RulesWorker:
    """Evaluates batches and writes what they owe, in the order the module docstring gives."""

    def __init__(
        self,
        app: RulesApp,
        engine: Engine,
        metrics: RulesMetrics,
        table: TableT[bytes, bytes | None],
        index: DeadlineIndex,
        *,
        partitions: int,
        ticks_topic: str,
        rekeyed_topic: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.app = app
        self.engine = engine
        self.metrics = metrics
        self.table = table
        self.index = index
        self.partitions = partitions
        self.ticks_topic = ticks_topic
        self.rekeyed_topic = rekeyed_topic
        self.clock = clock
        self.retrying = False
        """True while a batch waits to be tried again after Kafka refused a write."""

    async def process_wholly(self, batch: list[Any]) -> None:
        """Process the batch until it is written; never return or raise with it half done."""
        attempt = 0
        try:
            while True:
                try:
                    await self.process(batch)
                    return
                except Exception as exc:
                    if not transient(exc):
                        raise
                    attempt += 1
                    self.retrying = True
                    self.metrics.batch_retries.inc()
                    log.warning(
                        "Kafka refused a write; trying the batch again",
                        extra={"reason": type(exc).__name__, "attempt": attempt},
                    )
                    await asyncio.sleep(retry_delay_s(attempt))
        except BaseException as exc:
            stopping = isinstance(exc, asyncio.CancelledError) and self.app.should_stop
            log.error(
                "batch not completed; exiting so that it is read again after a restart",
                extra={"reason": type(exc).__name__, "count": len(batch)},
            )
            exit_now(0 if stopping else 1)
            raise  # only reached when exit_now is replaced in a test
        finally:
            self.retrying = False

    async def process(self, batch: list[Any]) -> None:
        """Evaluate a batch, then: dead letters and escalations acked by Kafka, then state
        written, then the changelog flushed. Only after that does faust ack the batch."""
        writes = Writes()
        now = self.clock()
        for ev in batch:
            self.take(ev, now, writes)
        await self.send(writes)
        await self.store(writes)
        self.report_lag(writes.last_offset)

    def take(self, ev: Any, now: datetime, writes: Writes) -> None:
        """One record of the batch into `writes`: forwarded, dead-lettered or evaluated."""
        message = ev.message
        writes.last_offset[message.tp] = message.offset
        key: bytes | None = message.key
        belongs = misplaced(message, self.partitions)
        if belongs is not None:
            writes.forward.append((message, belongs))
            return
        item = self.read(message)
        if isinstance(item, Rejected):
            writes.dead.append((message, item))
            return
        if key is None:
            return
        if not isinstance(item, Tick) and is_canary(item.agency_id):
            self.evaluate_canary(message, item, now, writes)
        else:
            self.evaluate_one(ev, key, item, now, writes)

    def read(self, message: Any) -> Input | Rejected:
        """`decode`, counting the events read (canaries and ticks are not counted)."""
        try:
            item = decode(message, self.ticks_topic)
            if isinstance(item, EventBase) and not is_canary(item.agency_id):
                self.metrics.events.labels(item.event_type).inc()
            return item
        except Exception as exc:  # a decoder bug must not block the partition either
            log.exception("decoding failed", extra={"reason": type(exc).__name__})
            return Rejected("internal_error", f"internal error: {type(exc).__name__}")

    def evaluate_canary(self, message: Any, item: EventBase, now: datetime, writes: Writes) -> None:
        """Evaluated on no state and kept nowhere: no timers, no counts, nothing grows."""
        try:
            _, out = self.engine.evaluate(None, item, now)
        except Exception as exc:  # the missing canary alert says so
            log.exception("canary evaluation failed", extra={"reason": type(exc).__name__})
            return
        writes.canaries += stamp_accepted(out, message)

    def evaluate_one(self, ev: Any, key: bytes, item: Input, now: datetime, writes: Writes) -> None:
        """A child's event or tick against its state as of the earlier records of the batch."""
        message = ev.message
        try:
            with self.metrics.evaluate_seconds.time():
                state = self.state_of(key, writes)
                new, out = self.engine.evaluate(state, item, now)
        except ConflictingDuplicate:
            reason = "event_id was applied before with different content"
            writes.dead.append((message, Rejected("conflicting_duplicate", reason)))
            return
        except Exception as exc:  # a bug must not block the partition; keep the bytes
            log.exception("evaluation failed", extra={"reason": type(exc).__name__})
            if not isinstance(item, Tick):
                reason = f"internal error: {type(exc).__name__}"
                writes.dead.append((message, Rejected("internal_error", reason)))
            return
        if new is state:
            if not isinstance(item, Tick):
                self.metrics.duplicates.inc()
            if key not in writes.states:
                self.index.update(key, state)
            return
        if new is not None:
            new.partition = message.partition
        writes.states[key] = new
        writes.last_event[key] = ev
        if not isinstance(item, Tick):
            out = stamp_accepted(out, message)
            parent = tracing.from_headers(message.headers)
            if parent is not None:
                writes.traced.update((e.escalation_id, parent) for e in out)
        writes.escalations += out

    def state_of(self, key: bytes, writes: Writes) -> ChildState | None:
        if key in writes.states:
            return writes.states[key]
        raw = self.table.get(key)
        return ChildState.from_bytes(raw) if raw is not None else None

    async def send(self, writes: Writes) -> None:
        """Forwarded records, dead letters, then escalations; returns once Kafka acked all."""
        futures = []
        for message, belongs in writes.forward:  # in source order: each partition's order is kept
            futures.append(await self.forward(message, belongs))
        for message, rejected in writes.dead:
            futures.append(await self.dead_letter(message, rejected))
        for e in writes.escalations + writes.canaries:
            futures.append(await self.emit(e, writes.traced.get(e.escalation_id)))
        for fut in futures:
            await fut
        for e in writes.escalations:
            self.metrics.escalations.labels(e.rule_id, e.severity, e.status).inc()

    async def forward(self, message: Any, belongs: int) -> Any:
        headers = [*(message.headers or []), *rekeyed_headers(message)]
        sent = await self.app.producer.send(
            self.rekeyed_topic, message.key, message.value, belongs, None, headers
        )
        self.metrics.rekeyed.inc()
        return sent

    async def dead_letter(self, message: Any, rejected: Rejected) -> Any:
        k, v, headers = dlq_record(message, rejected.reason, self.rekeyed_topic)
        sent = await self.app.producer.send(topics.EVENTS_DLQ, k, v, None, None, headers)
        self.metrics.dlq.labels(rejected.code).inc()
        log.warning(
            "event sent to dead-letter topic",
            extra={
                "reason": rejected.code,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
        )
        return sent

    async def emit(self, e: Escalation, parent: str | None) -> Any:
        trace = tracing.child_headers(parent, e.escalation_id)
        return await self.app.producer.send(
            topics.ESCALATIONS, e.key.encode(), e.to_bytes(), None, None, trace or None
        )

    async def store(self, writes: Writes) -> None:
        """The batch's new states into the table, then the changelog flushed."""
        for key, state in writes.states.items():
            if state is None:
                continue
            # The table (and its RocksDB store) take the partition from the current event.
            token = _current_event.set(weakref.ref(writes.last_event[key]))
            try:
                self.table[key] = state.to_bytes()
            finally:
                _current_event.reset(token)
            self.index.update(key, state)
        if writes.states:
            await self.app.producer.flush()

    def report_lag(self, last_offset: dict[Any, int]) -> None:
        for tp, offset in last_offset.items():
            try:
                behind = self.app.consumer.highwater(tp) - offset - 1
            except Exception:  # highwater unknown before the first fetch response
                continue
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, behind))
