"""Notify's durable memory, all in Kafka:

- the sent-log (compacted topic, key notification_id): terminal outcome of each notification;
  a notification id in it is never delivered again.
- the open registry (compacted topic, key escalation_id): firing escalations still waiting for
  acknowledgement or resolution; a tombstone closes one.
- acknowledgements (care.acks.v1, key escalation_id).
- silences and maintenance windows (care.silences.v1, compacted, key silence_id).

`load()` reads all four to their end before the worker starts; `follow()` keeps tailing them so
that several notify instances see each other's writes. Every write waits for Kafka's ack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from services.common import topics
from services.common.kafka import KafkaClient, partition_counts
from services.notify.records import Ack, NotificationRecord, OpenEntry
from services.notify.silences import Silence
from services.notify.store import keep_ack, keep_outcome, stopped_by

log = logging.getLogger(__name__)

CLOSED_GRACE_S = 300.0  # how long a closed escalation's acks and outcomes are kept


class Ledger:
    def __init__(
        self,
        kafka: KafkaClient,
        producer: AIOKafkaProducer,
        sent_topic: str,
        open_topic: str,
        unreadable: Counter | None = None,
    ) -> None:
        self.kafka = kafka
        self.producer = producer
        self.sent_topic = sent_topic
        self.open_topic = open_topic
        self.sent: set[str] = set()  # notification ids whose outcome is final
        self.open: dict[str, OpenEntry] = {}
        self.acks: dict[str, list[Ack]] = {}
        # The final record of each notification of an open escalation (the operators' API).
        self.outcomes: dict[str, list[NotificationRecord]] = {}
        self.silences: dict[str, Silence] = {}
        # Escalations closed (monotonic time): their acks and outcomes are forgotten a while
        # later (records of the last step may still arrive from another topic).
        self._closed: dict[str, float] = {}
        self._consumer: AIOKafkaConsumer | None = None
        # Skipped records, counted by kind (CarealertLedgerUnreadable pages on it).
        self.unreadable = unreadable
        # What this instance wrote and has not read back yet: (topic, key) → (bytes, object).
        # Read back byte for byte, the object is applied as it is instead of parsed again
        # (under a burst, parsing our own writes was a tenth of notify's time).
        self._mine: dict[tuple[str, str], tuple[bytes, OpenEntry | NotificationRecord]] = {}

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        try:
            self._apply_record(topic, key, value)
        except ValueError as exc:  # one unreadable record must not keep notify from starting
            kind = (
                "sent"
                if topic == self.sent_topic
                else "open"
                if topic == self.open_topic
                else "silences"
                if topic == topics.SILENCES
                else "acks"
            )
            log.error(
                "unreadable ledger record skipped",
                extra={"topic": topic, "reason": type(exc).__name__},
            )
            if self.unreadable is not None:
                self.unreadable.labels(kind).inc()

    def _parsed(
        self, topic: str, k: str, value: bytes, model: type[OpenEntry] | type[NotificationRecord]
    ) -> Any:
        """The record `value` holds: the object this instance wrote if these are its bytes,
        else `value` parsed."""
        mine = self._mine.pop((topic, k), None)
        if mine is not None and mine[0] == value:
            return mine[1]
        return model.model_validate_json(value)

    def _apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        k = key.decode()
        if topic == self.sent_topic:
            if value is not None:  # the key alone makes the notification final
                self.sent.add(k)
                keep_outcome(self.outcomes, self._parsed(topic, k, value, NotificationRecord))
        elif topic == self.open_topic:
            if value is None:
                self.open.pop(k, None)
                self._closed[k] = time.monotonic()
            else:
                entry = self._parsed(topic, k, value, OpenEntry)
                entry.acked_by = stopped_by(self.acks.get(k, []))
                self.open[k] = entry
        elif topic == topics.ACKS and value is not None:
            self._acked(Ack.model_validate_json(value))
        elif topic == topics.SILENCES:
            if value is None:
                self.silences.pop(k, None)
            else:
                self.silences[k] = Silence.model_validate_json(value)

    def _acked(self, ack: Ack) -> None:
        keep_ack(self.acks, self.open, ack)

    async def load(self) -> None:
        """Read the four topics to their current end."""
        consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka(enable_auto_commit=False, isolation_level="read_committed")
        )
        await consumer.start()
        try:
            names = (topics.ACKS, topics.SILENCES, self.sent_topic, self.open_topic)
            counts = await asyncio.to_thread(
                partition_counts, self.kafka, names, client_id="carealert-notify"
            )
            # acks first so open entries loaded after them see their ack
            tps = [TopicPartition(t, p) for t in names for p in range(counts[t])]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, records in batch.items():
                    for r in records:
                        self._apply(tp.topic, r.key, r.value)
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            # What is kept of escalations closed before (tombstones may be compacted away).
            self.forget_closed(set(self.outcomes) | set(self.acks))
            self._consumer = consumer
        except BaseException:
            await consumer.stop()
            raise

    async def follow(self) -> None:
        """Apply new records as they arrive (runs until cancelled); forget what is kept of
        escalations closed for a while."""
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    self._apply(tp.topic, r.key, r.value)
            cutoff = time.monotonic() - CLOSED_GRACE_S
            self.forget_closed({k for k, at in self._closed.items() if at < cutoff})

    def forget_closed(self, escalation_ids: set[str]) -> None:
        """Drop the acknowledgements and outcomes of these escalations unless they are open."""
        for esc_id in escalation_ids - set(self.open):
            self.acks.pop(esc_id, None)
            self.outcomes.pop(esc_id, None)
            self._closed.pop(esc_id, None)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _write_mine(
        self, topic: str, key: str, value: bytes, written: OpenEntry | NotificationRecord
    ) -> None:
        """Write a record whose object `follow` may take back as it is (see `_mine`)."""
        self._mine[(topic, key)] = (value, written)
        try:
            await self.producer.send_and_wait(topic, key=key.encode(), value=value)
        except BaseException:
            if self._mine.get((topic, key), (None,))[0] is value:
                del self._mine[(topic, key)]
            raise

    async def record_sent(self, nid: str, record: NotificationRecord) -> None:
        await self._write_mine(self.sent_topic, nid, record.to_bytes(), record)
        self.sent.add(nid)
        keep_outcome(self.outcomes, record)

    async def put_open(self, entry: OpenEntry) -> None:
        esc_id = entry.escalation.escalation_id
        await self._write_mine(self.open_topic, esc_id, entry.to_bytes(), entry)
        self.open[esc_id] = entry

    async def close_open(self, escalation_id: str) -> None:
        await self.producer.send_and_wait(self.open_topic, key=escalation_id.encode(), value=None)
        self.open.pop(escalation_id, None)
        self._closed[escalation_id] = time.monotonic()

    async def record_ack(self, ack: Ack) -> None:
        await self.producer.send_and_wait(
            topics.ACKS, key=ack.escalation_id.encode(), value=ack.to_bytes()
        )
        self._acked(ack)

    async def put_silence(self, silence: Silence) -> None:
        await self.producer.send_and_wait(
            topics.SILENCES, key=silence.silence_id.encode(), value=silence.to_bytes()
        )
        self.silences[silence.silence_id] = silence


async def wait_stopped(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
