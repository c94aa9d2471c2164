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
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.common import tracing
from services.common.dlq import TOMBSTONE_REASON, first_problem
from services.common.escalations import Escalation
from services.common.fetching import positions, recover
from services.common.unreadable import MARK, Held
from services.notify.pipeline import Notifier

log = logging.getLogger(__name__)


class Unusable(Exception):
    """A record on the escalations topic without a value, or one that could not be decoded."""


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
    tracker = OffsetTracker()
    to_commit: dict[TopicPartition, int] = {}
    held = held or Held("notify")
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    last_tick = 0.0
    loop = asyncio.get_running_loop()

    async def run_one(tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        offset, key, value = record.offset, record.key, record.value

        async def dead_letter(reason: str, detail: str) -> None:
            await notifier.recorder.dead_letter(
                tp, offset, key, value, reason, detail, record.headers
            )

        # This task's own context: what it writes carries the escalation's trace.
        tracing.current.set(tracing.from_headers(record.headers))
        unreadable = dict(record.headers or ()).get(MARK)
        try:
            try:
                if unreadable is not None or value is None:
                    raise Unusable
                esc = Escalation.model_validate_json(value)
            except Unusable:
                if unreadable is not None:
                    await dead_letter("unreadable_record", unreadable.decode())
                else:
                    await dead_letter("tombstone", TOMBSTONE_REASON)
            except ValidationError as exc:
                undecodable = exc.errors(include_input=False)[0]["type"] == "json_invalid"
                await dead_letter(
                    "undecodable" if undecodable else "invalid_escalation",
                    "not JSON" if undecodable else first_problem(exc),
                )
            else:
                # Handling is idempotent (sent-log, open registry): safe to run again.
                try:
                    await notifier.recorder.written(
                        lambda: notifier.handle(esc, tp.partition), tp.partition
                    )
                except Exception as exc:  # a bug must not stop the partition: DLQ, and page
                    log.exception(
                        "escalation handling failed",
                        extra={"reason": type(exc).__name__, "offset": offset},
                    )
                    await dead_letter("internal_error", f"internal error: {type(exc).__name__}")
        except Exception as exc:  # even the DLQ write failed: the offset stays uncommitted
            log.exception(
                "escalation handling failed", extra={"reason": type(exc).__name__, "offset": offset}
            )
            raise
        else:
            tracker.done(tp, offset)
        finally:
            slots.release()

    while True:
        if pause_file is not None and pause_file.exists() and not consumer.paused():
            log.warning("fault injection: fetching paused")
            consumer.pause(*consumer.assignment())
        batch = await fetch(consumer, int(min(tick_s, 0.5) * 1000), held)
        for tp, records in batch.items():
            if records:
                high = consumer.highwater(tp)
                if high is not None:
                    behind = max(0, high - records[-1].offset - 1)
                    notifier.metrics.lag.labels(tp.topic, str(tp.partition)).set(behind)
            for r in records:
                await slots.acquire()
                tracker.start(tp, r.offset)
                task = asyncio.create_task(run_one(tp, r))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        to_commit.update(tracker.committable())
        owned_now = consumer.assignment()
        for tp in [tp for tp in to_commit if tp not in owned_now]:
            del to_commit[tp]  # revoked: its new owner commits it
        if to_commit:
            if fault_file is not None and fault_file.exists():
                fault_file.unlink()
                log.warning("fault injection: exiting before commit")
                os._exit(70)
            try:
                await consumer.commit(to_commit)
                to_commit.clear()
            except KafkaError as exc:  # kept, and tried again on the next round
                log.warning("offset commit failed", extra={"reason": type(exc).__name__})
        if loop.time() - last_tick >= tick_s:
            last_tick = loop.time()
            owned = {tp.partition for tp in consumer.assignment()}
            task = asyncio.create_task(notifier.tick(owned))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(_tick_failed)


def _tick_failed(task: asyncio.Task[None]) -> None:
    """A failed reminder tick is logged (the next tick tries again), never lost unread."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "reminder tick failed; trying again on the next tick",
            extra={"reason": type(task.exception()).__name__},
        )
