"""Writing notify's records durably: notification records, sent-log entries and dead letters,
each tried again in place while Kafka refuses (a broker restarting), so a delivery already made
is recorded, never made a second time.

It also counts the partitions whose escalations wait on a retry (a receiver or Kafka failing):
their commits are held back on purpose, so the stall watch does not count them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition

from services.common import topics, tracing
from services.common.dlq import dlq_headers
from services.common.escalations import Escalation
from services.common.kafka import retry_delay_s, transient
from services.notify.metrics import NotifyMetrics
from services.notify.records import NotificationRecord, Recipient, Status
from services.notify.store import NotificationLog, RecordWriter

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        *,
        producer: RecordWriter,
        ledger: NotificationLog,
        metrics: NotifyMetrics,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        self.producer = producer
        self.ledger = ledger
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.retrying: Counter[int] = Counter()

    def mark_retrying(self, partition: int | None, delta: int) -> None:
        """Count a delivery of `partition`'s escalation entering (+1) or leaving (-1) retries."""
        if partition is None:
            return
        self.retrying[partition] += delta
        if self.retrying[partition] <= 0:
            del self.retrying[partition]

    async def written(
        self, write: Callable[[], Awaitable[Any]], partition: int | None = None
    ) -> None:
        """Await something that writes to Kafka, trying it again in place while Kafka refuses.
        With `partition`, that partition counts as retrying meanwhile. Any other error
        propagates."""
        attempt = 0
        while True:
            try:
                await write()
                return
            except Exception as exc:
                if not transient(exc):
                    raise
                attempt += 1
                log.warning(
                    "Kafka refused a write; trying again",
                    extra={"reason": type(exc).__name__, "attempt": attempt},
                )
                self.mark_retrying(partition, +1)
                try:
                    await self.sleep(retry_delay_s(attempt))
                finally:
                    self.mark_retrying(partition, -1)

    async def attempt(
        self,
        nid: str,
        esc: Escalation,
        target: Recipient,
        step: str,
        channel: str,
        status: Status,
        attempt: int,
        reason: str | None,
        *,
        person_id: str | None = None,
        silence_id: str | None = None,
        redirected_to: str | None = None,
        digest_id: str | None = None,
    ) -> NotificationRecord:
        """Write one notification record to care.notifications.v1 and count it."""
        record = NotificationRecord(
            notification_id=nid,
            escalation_id=esc.escalation_id,
            receiver=target.receiver,
            recipient_class=target.recipient_class,
            channel=channel,
            status=status,
            attempt=attempt,
            step=step,
            escalation_status=esc.status,
            at=self.clock(),
            reason=reason or None,
            person_id=person_id,
            silence_id=silence_id,
            redirected_to=redirected_to,
            digest_id=digest_id,
            agency_id=esc.agency_id,
        )
        await self.written(
            lambda: self.producer.send_and_wait(
                topics.NOTIFICATIONS,
                key=esc.escalation_id.encode(),
                value=record.to_bytes(),
                headers=tracing.child_headers(tracing.current.get(), f"{nid}|{status}|{attempt}")
                or None,
            )
        )
        self.metrics.deliveries.labels(channel, status, reason or "").inc()
        return record

    async def final(self, record: NotificationRecord) -> None:
        """The outcome is final: into the sent-log, so the notification is never made again."""
        await self.written(lambda: self.ledger.record_sent(record.notification_id, record))

    async def dead_letter(
        self,
        tp: TopicPartition,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        detail: str,
        original_headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """An escalation record notify can never handle: to care.escalations.dlq with its
        original bytes and headers and where it came from; the partition moves on."""
        headers = dlq_headers(detail, tp.topic, tp.partition, offset, original_headers)
        await self.written(
            lambda: self.producer.send_and_wait(
                topics.ESCALATIONS_DLQ, key=key, value=value or b"", headers=headers
            )
        )
        self.metrics.dlq.labels(reason).inc()
        log.warning(
            "escalation sent to dead-letter topic",
            extra={
                "reason": reason,
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": offset,
            },
        )
