"""The notify worker's consumer loop: care.escalations.v1 in, each record handed to the
pipeline (services.notify.pipeline), bad records to care.escalations.dlq, offsets committed
only after every notification of a record reached the sent-log, in offset order (records are
handled concurrently, committed contiguously). A crash replays uncommitted records; the
pipeline skips what the sent-log already has."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.common import tracing
from services.common.dlq import TOMBSTONE_REASON, first_problem
from services.common.escalations import Escalation
from services.common.fetching import positions, recover
from services.common.unreadable import Held, stand_in_reason
from services.notify.pipeline import Notifier

log = logging.getLogger(__name__)


class OffsetTracker:
    """Commits each partition's offsets contiguously: an offset is committed only when it and
    every earlier offset handled by this worker are done."""

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, dict[int, bool]] = defaultdict(dict)

    def start(self, tp: TopicPartition, offset: int) -> None:
        self.pending[tp][offset] = False

    def done(self, tp: TopicPartition, offset: int) -> None:
        self.pending[tp][offset] = True

    def committable(self) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for tp, offsets in self.pending.items():
            last = None
            for off in sorted(offsets):
                if not offsets[off]:
                    break
                last = off
            if last is not None:
                for off in [o for o in offsets if o <= last]:
                    del offsets[off]
                out[tp] = last + 1
        return out


async def fetch(
    consumer: AIOKafkaConsumer, timeout_ms: int, held: Held
) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """The next records; a record that cannot be decoded comes as a stand-in to dead-letter,
    or holds its partition (services.common.unreadable) while the others flow."""
    before = positions(consumer)
    try:
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
        batch = await consumer.getmany(timeout_ms=timeout_ms)
    except Exception as exc:  # recover() raises it again unless decoding a record raised
        return await recover(consumer, before, exc, held)
    return batch


@dataclass(frozen=True)
class Rejected:
    """Why a record goes to care.escalations.dlq: the reason (the metric label) and the detail
    (the dead-letter header)."""

    reason: str
    detail: str


def judge(record: ConsumerRecord[bytes, bytes]) -> Escalation | Rejected:
    """The escalation a record carries, or why it is a dead letter: a stand-in for a record
    that could not be read, a tombstone, not JSON, or not a valid escalation. Pure."""
    unreadable = stand_in_reason(record.headers)
    if unreadable is not None:
        return Rejected("unreadable_record", unreadable)
    if record.value is None:
        return Rejected("tombstone", TOMBSTONE_REASON)
    try:
        return Escalation.model_validate_json(record.value)
    except ValidationError as exc:
        undecodable = exc.errors(include_input=False)[0]["type"] == "json_invalid"
        return Rejected(
            "undecodable" if undecodable else "invalid_escalation",
            "not JSON" if undecodable else first_problem(exc),
        )


async def dead_letter(
    notifier: Notifier,
    tp: TopicPartition,
    record: ConsumerRecord[bytes, bytes],
    rejected: Rejected,
) -> None:
    await notifier.recorder.dead_letter(
        tp,
        record.offset,
        record.key,
        record.value,
        rejected.reason,
        rejected.detail,
        record.headers,
    )


async def hand_over(
    notifier: Notifier, tp: TopicPartition, record: ConsumerRecord[bytes, bytes], esc: Escalation
) -> None:
    """The escalation handled, its outcome recorded (Kafka refusals retried in place, the
    partition counting as retrying meanwhile). A failure of the handling itself is a bug: it
    is logged and the record dead-lettered (`internal_error`) so the partition moves on."""
    # Handling is idempotent (sent-log, open registry): safe to run again.
    try:
        await notifier.recorder.written(lambda: notifier.handle(esc, tp.partition), tp.partition)
    except Exception as exc:  # a bug must not stop the partition: DLQ, and page
        log.exception(
            "escalation handling failed",
            extra={"reason": type(exc).__name__, "offset": record.offset},
        )
        internal = Rejected("internal_error", f"internal error: {type(exc).__name__}")
        await dead_letter(notifier, tp, record, internal)


async def handle_record(
    notifier: Notifier, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]
) -> None:
    """One record: dead-lettered, or handed to the notifier. Raises only when the dead letter
    itself could not be written."""
    verdict = judge(record)
    if isinstance(verdict, Rejected):
        await dead_letter(notifier, tp, record, verdict)
    else:
        await hand_over(notifier, tp, record, verdict)


class InFlight:
    """Records handled concurrently, at most `max_in_flight` at once; each offset is done in
    the tracker once its record is handled (or dead-lettered), never before."""

    def __init__(self, notifier: Notifier, max_in_flight: int) -> None:
        self.notifier = notifier
        self.tracker = OffsetTracker()
        self.slots = asyncio.Semaphore(max_in_flight)
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        """Waits for a free slot, then handles the record in a task of its own."""
        await self.slots.acquire()
        self.tracker.start(tp, record.offset)
        _keep(self.tasks, self._run(tp, record))

    async def _run(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        # This task's own context: what it writes carries the escalation's trace.
        tracing.current.set(tracing.from_headers(record.headers))
        try:
            await handle_record(self.notifier, tp, record)
        except Exception as exc:  # even the DLQ write failed: the offset stays uncommitted
            log.exception(
                "escalation handling failed",
                extra={"reason": type(exc).__name__, "offset": record.offset},
            )
            raise
        else:
            self.tracker.done(tp, record.offset)
        finally:
            self.slots.release()


class Committer:
    """Commits the offsets done on the partitions this worker owns; a commit that failed is
    kept and tried again next round, a revoked partition's is dropped (its new owner commits)."""

    def __init__(self, consumer: AIOKafkaConsumer, fault_file: Any = None) -> None:
        self.consumer = consumer
        self.fault_file = fault_file
        self.pending: dict[TopicPartition, int] = {}

    async def commit(self, done: dict[TopicPartition, int]) -> None:
        self.pending.update(done)
        owned_now = self.consumer.assignment()
        for tp in [tp for tp in self.pending if tp not in owned_now]:
            del self.pending[tp]  # revoked: its new owner commits it
        if not self.pending:
            return
        exit_if_fault_injected(self.fault_file)
        try:
            await self.consumer.commit(self.pending)
            self.pending.clear()
        except KafkaError as exc:  # kept, and tried again on the next round
            log.warning("offset commit failed", extra={"reason": type(exc).__name__})


class Ticker:
    """The notifier's timer (reminders, escalation steps) for the partitions this worker owns,
    every `tick_s`, each tick a background task; a failed tick is logged, the next one tries
    again."""

    def __init__(self, notifier: Notifier, consumer: AIOKafkaConsumer, tick_s: float) -> None:
        self.notifier = notifier
        self.consumer = consumer
        self.tick_s = tick_s
        self.last = 0.0
        self.tasks: set[asyncio.Task[None]] = set()

    def tick_if_due(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self.last < self.tick_s:
            return
        self.last = loop.time()
        owned = {tp.partition for tp in self.consumer.assignment()}
        task = _keep(self.tasks, self.notifier.tick(owned))
        task.add_done_callback(_tick_failed)


def _keep(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run `work` as a task, referenced in `tasks` until it ends."""
    task = asyncio.create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def report_lag(
    notifier: Notifier,
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    records: list[ConsumerRecord[bytes, bytes]],
) -> None:
    """How many records of the partition are behind the last one fetched."""
    if not records:
        return
    high = consumer.highwater(tp)
    if high is not None:
        behind = max(0, high - records[-1].offset - 1)
        notifier.metrics.lag.labels(tp.topic, str(tp.partition)).set(behind)


def pause_if_fault_injected(consumer: AIOKafkaConsumer, pause_file: Any) -> None:
    """Test hook (CommonSettings.stall_fault_file): fetching stops while records wait."""
    if pause_file is not None and pause_file.exists() and not consumer.paused():
        log.warning("fault injection: fetching paused")
        consumer.pause(*consumer.assignment())


def exit_if_fault_injected(fault_file: Any) -> None:
    """Test hook (NotifySettings.notify_fault_file): a crash after the effects, before the
    commit."""
    if fault_file is not None and fault_file.exists():
        fault_file.unlink()
        log.warning("fault injection: exiting before commit")
        os._exit(70)


async def consume(
    notifier: Notifier,
    consumer: AIOKafkaConsumer,
    max_in_flight: int,
    tick_s: float,
    fault_file: Any = None,
    pause_file: Any = None,
    held: Held | None = None,
) -> None:
    """The consumer loop: handle escalations concurrently, commit in order, tick the timer.
    `fault_file` and `pause_file` are test hooks (NotifySettings.notify_fault_file,
    CommonSettings.stall_fault_file)."""
    held = held or Held("notify")
    in_flight = InFlight(notifier, max_in_flight)
    committer = Committer(consumer, fault_file)
    ticker = Ticker(notifier, consumer, tick_s)
    while True:
        pause_if_fault_injected(consumer, pause_file)
        batch = await fetch(consumer, int(min(tick_s, 0.5) * 1000), held)
        for tp, records in batch.items():
            report_lag(notifier, consumer, tp, records)
            for record in records:
                await in_flight.start(tp, record)
        await committer.commit(in_flight.tracker.committable())
        ticker.tick_if_due()


def _tick_failed(task: asyncio.Task[None]) -> None:
    """A failed reminder tick is logged (the next tick tries again), never lost unread."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "reminder tick failed; trying again on the next tick",
            extra={"reason": type(task.exception()).__name__},
        )
