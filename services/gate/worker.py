"""The gate's consumer loop: every agency input topic in, each record forwarded to
care.events.v1 or dead-lettered to care.events.dlq (services.gate.writes), offsets committed.

Per batch: every record planned (pure), every write sent in offset order and acknowledged by
Kafka (acks=all, idempotent producer), and only then the batch's offsets committed. A crash or
a lost partition at any point means the uncommitted records are read and forwarded again: at
least once, and a duplicate is harmless (rules de-duplicates by event_id). Kafka refusing a
write for a passing reason (a broker restarting, a leader moving) is retried in place with
backoff, never committed past; a record care.events.v1 refuses for good (too large) is
dead-lettered instead, and a dead letter refused for good is written without its value (the
record stays on its input topic); any other failure (an ACL missing, a bug) ends the loop
with nothing committed, and the process exits for its supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from services.common.fetching import positions, recover
from services.common.kafka import retry_delay_s, transient
from services.common.unreadable import Held
from services.gate.metrics import GateMetrics
from services.gate.writes import Record, Write, bare_dead_letter, plan, refused_forward

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[Any]]

REFUSED_RECORD = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)
"""Kafka's refusals of one record, for a reason of its own: writing it again cannot help."""


async def fetch(consumer: AIOKafkaConsumer, held: Held, *, timeout_ms: int, most: int) -> Batch:
    """The next records; a record that cannot be decoded comes as a stand-in to dead-letter,
    or holds its partition (services.common.unreadable) while the others flow."""
    before = positions(consumer)
    try:
        batch: Batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=most)
    except Exception as exc:  # recover() raises it again unless decoding a record raised
        return await recover(consumer, before, exc, held)
    return batch


class Committer:
    """Commits offsets of the partitions the gate owns; a commit that failed is kept and tried
    again with the next batch, a revoked partition's is dropped (its new owner reads on from
    the last commit, forwarding some records again)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.pending: dict[TopicPartition, int] = {}

    async def commit(self, done: dict[TopicPartition, int]) -> None:
        self.pending.update(done)
        owned = self.consumer.assignment()
        for tp in [tp for tp in self.pending if tp not in owned]:
            del self.pending[tp]
        if not self.pending:
            return
        try:
            await self.consumer.commit(dict(self.pending))
            self.pending.clear()
        except KafkaError as exc:
            log.warning("offset commit failed; trying again", extra={"reason": type(exc).__name__})


class Gate:
    """Reads batches, writes what they owe, commits; `run` until cancelled or a write fails
    for good."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        metrics: GateMetrics,
        held: Held,
        *,
        partitions: int,
        batch_max: int,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.metrics = metrics
        self.held = held
        self.partitions = partitions
        """The partition count of care.events.v1 (it never changes: see docs/contract.md)."""
        self.batch_max = batch_max
        self.committer = Committer(consumer)
        self.retrying = False
        """True while a batch waits to be written again after a passing refusal."""

    async def run(self) -> None:
        while True:
            batch = await fetch(self.consumer, self.held, timeout_ms=500, most=self.batch_max)
            if batch:
                await self.pass_on(batch)
            elif self.committer.pending:
                await self.committer.commit({})

    async def pass_on(self, batch: Batch) -> None:
        """One batch: written wholly, then its offsets committed."""
        records = [r for tp in batch for r in batch[tp]]
        await self.write_wholly([(r, plan(r, self.partitions)) for r in records])
        await self.committer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})

    async def write_wholly(self, writes: list[tuple[Record, Write]]) -> None:
        """Returns once every write is acknowledged; what Kafka refused for a passing reason is
        written again (what was acknowledged is not), with backoff."""
        attempt = 0
        while writes:
            writes = await self.write(writes)
            if writes:
                attempt += 1
                self.retrying = True
                self.metrics.batch_retries.inc()
                log.warning(
                    "Kafka refused writes for a passing reason; writing them again",
                    extra={"count": len(writes), "attempt": attempt},
                )
                await asyncio.sleep(retry_delay_s(attempt))
        self.retrying = False

    async def write(self, writes: list[tuple[Record, Write]]) -> list[tuple[Record, Write]]:
        """Send every write in order, then wait for each acknowledgement; return the writes to
        try again. Raises what Kafka refused for good, except a refused forward, which is
        dead-lettered."""
        sent = [(record, w, await self.send(w)) for record, w in writes]
        again: list[tuple[Record, Write]] = []
        for record, w, acked in sent:
            error = await outcome(acked)
            if error is None:
                self.count(record, w)
            elif transient(error):
                again.append((record, w))
            elif isinstance(error, REFUSED_RECORD) and w.reason is None:
                again.append((record, refused_forward(record, error)))
            elif isinstance(error, REFUSED_RECORD) and w.value:
                again.append((record, bare_dead_letter(w, record, error)))
            else:
                raise error
        return again

    async def send(self, w: Write) -> asyncio.Future[Any]:
        """The write handed to the producer (in order); its acknowledgement to await. A refusal
        raised at once (e.g. too large) comes back as a failed acknowledgement."""
        try:
            ack: asyncio.Future[Any] = await self.producer.send(
                w.topic, w.value, w.key, w.partition, None, w.headers
            )
            return ack
        except Exception as exc:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    def count(self, record: Record, w: Write) -> None:
        if w.reason is None:
            self.metrics.forwarded.inc()
            return
        self.metrics.dlq.labels(w.reason).inc()
        log.warning(
            "record sent to dead-letter topic",
            extra={
                "reason": w.reason,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )


async def outcome(ack: asyncio.Future[Any]) -> BaseException | None:
    """None once the write is acknowledged, else why it was refused."""
    try:
        await ack
    except Exception as exc:
        return exc
    return None
