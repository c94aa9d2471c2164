"""The delivery pipeline for one escalation: route → de-duplicate by notification id → render
per recipient class → send with retry → record the outcome (notification record, sent-log) →
remember or forget the open escalation; and the timer's reminders and escalation steps.

Exactly one delivery per (escalation, receiver, step) rests on a deterministic notification id
and the sent-log: before delivering, an id already there is skipped; after the final outcome,
the id is written there and its write acknowledged. The consumer loop (services.notify.worker)
commits an escalation's offset only after that. The one window left is between a channel
accepting a message and the sent-log write; each message therefore carries its id (webhook
`Idempotency-Key`, email `Message-ID`) so a receiver can drop the resend.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import TopicPartition

from services.common import topics, tracing
from services.common.canary import is_canary
from services.common.dlq import dlq_headers
from services.common.escalations import Escalation
from services.common.kafka import retry_delay_s, transient
from services.notify.acks import ack_url
from services.notify.addresses import NoContact, resolve_address
from services.notify.canary import canary_returned
from services.notify.channels.base import Channel, Delivery, DeliveryError
from services.notify.metrics import NotifyMetrics
from services.notify.records import OpenEntry, notification_id
from services.notify.retry import RetryPolicy
from services.notify.routing import Routing, Target
from services.notify.schedule import due_steps
from services.notify.store import NotificationLog, RecordWriter
from services.notify.templates import Templates, context_for

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        *,
        routing: Routing,
        templates: Templates,
        channels: dict[str, Channel],
        ledger: NotificationLog,
        producer: RecordWriter,
        metrics: NotifyMetrics,
        retry: RetryPolicy,
        ack_secret: str,
        public_url: str,
        ack_ttl_s: float = 7 * 86400,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.routing = routing
        self.templates = templates
        self.channels = channels
        self.ledger = ledger
        self.producer = producer
        self.metrics = metrics
        self.retry = retry
        self.ack_secret = ack_secret
        self.public_url = public_url
        self.ack_ttl_s = ack_ttl_s
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.inflight: set[str] = set()
        # Partitions whose escalations wait on a retry (a receiver or Kafka failing): their
        # commits are held back on purpose, so the stall watch does not count them.
        self.retrying: Counter[int] = Counter()

    # --- records ----------------------------------------------------------------------------

    async def _record(
        self,
        nid: str,
        esc: Escalation,
        target: Target,
        channel: str,
        step: str,
        status: str,
        attempt: int,
        reason: str | None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "notification_id": nid,
            "escalation_id": esc.escalation_id,
            "receiver": target.receiver,
            "recipient_class": target.recipient_class,
            "channel": channel,
            "status": status,
            "attempt": attempt,
            "step": step,
            "escalation_status": esc.status,
            "at": self.clock().isoformat(),
        }
        if reason:
            record["reason"] = reason
        await self.written(
            lambda: self.producer.send_and_wait(
                topics.NOTIFICATIONS,
                key=esc.escalation_id.encode(),
                value=json.dumps(record).encode(),
                headers=tracing.child_headers(tracing.current.get(), f"{nid}|{status}|{attempt}")
                or None,
            )
        )
        self.metrics.deliveries.labels(channel, status, reason or "").inc()
        return record

    async def _failed_before_sending(
        self, nid: str, esc: Escalation, target: Target, channel: str, step: str, reason: str
    ) -> None:
        """Nothing could be sent (no contact, a template error): a `failed` record, counted, so
        CarealertDeliveryFailures fires; final, like any failure."""
        final = await self._record(nid, esc, target, channel, step, "failed", 0, reason)
        await self.written(lambda: self.ledger.record_sent(nid, final))

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

    async def written(
        self, write: Callable[[], Awaitable[Any]], partition: int | None = None
    ) -> None:
        """Await something that writes to Kafka, trying it again in place while Kafka refuses
        (a broker restarting): a delivery already made is then recorded, never made a second
        time. With `partition`, that partition counts as retrying meanwhile (its commit waits
        on purpose). Any other error propagates."""
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

    # --- one notification ---------------------------------------------------------------------

    async def deliver(
        self, esc: Escalation, target: Target, step: str, partition: int | None = None
    ) -> None:
        """Deliver one notification at most once; record every attempt and the outcome.
        `partition`: the escalation's partition when its commit waits on this delivery."""
        nid = notification_id(esc.escalation_id, target.receiver, step)
        if nid in self.ledger.sent or nid in self.inflight:
            return
        self.inflight.add(nid)
        try:
            await self._deliver(nid, esc, target, step, partition)
        finally:
            self.inflight.discard(nid)

    def mark_retrying(self, partition: int | None, delta: int) -> None:
        """Count a delivery of `partition`'s escalation entering (+1) or leaving (-1) retries."""
        if partition is None:
            return
        self.retrying[partition] += delta
        if self.retrying[partition] <= 0:
            del self.retrying[partition]

    async def _deliver(
        self, nid: str, esc: Escalation, target: Target, step: str, partition: int | None
    ) -> None:
        spec = self.routing.receivers[target.receiver]
        default_channel = "email" if spec.email else "webhook" if spec.webhook else "sms"
        try:
            channel_name, address, options = resolve_address(spec, esc, self.routing.staff)
        except NoContact as exc:
            await self._failed_before_sending(nid, esc, target, default_channel, step, str(exc))
            return
        expires = self.clock() + timedelta(seconds=self.ack_ttl_s)
        link = ack_url(
            self.public_url, self.ack_secret, esc.escalation_id, target.receiver, expires
        )
        try:
            context = context_for(
                target.recipient_class,
                esc,
                agency_contact=self.routing.agency_contact.get(
                    esc.agency_id, "your agency contact"
                ),
                ack_url=link if esc.status == "firing" else None,
                shelter_photo=self.routing.shelter_photo,
            )
            message = self.templates.render(target.recipient_class, context)
        except Exception as exc:  # a broken template must not silence the other receivers
            log.error(
                "template failed to render",
                extra={"receiver": target.receiver, "reason": type(exc).__name__},
            )
            await self._failed_before_sending(
                nid, esc, target, channel_name, step, "template_error"
            )
            return
        delivery = Delivery(
            nid,
            esc.escalation_id,
            target.receiver,
            target.recipient_class,
            address,
            message,
            options,
        )
        channel = self.channels[channel_name]
        attempt = 0
        retrying = False
        try:
            while True:
                attempt += 1
                try:
                    await channel.send(delivery)
                except DeliveryError as exc:
                    if not exc.retryable:
                        final = await self._record(
                            nid, esc, target, channel_name, step, "failed", attempt, exc.reason
                        )
                        break
                    if attempt >= self.retry.max_attempts:
                        final = await self._record(
                            nid,
                            esc,
                            target,
                            channel_name,
                            step,
                            "dead_lettered",
                            attempt,
                            exc.reason,
                        )
                        log.warning(
                            "notification dead-lettered",
                            extra={
                                "notification_id": nid,
                                "reason": exc.reason,
                                "receiver": target.receiver,
                            },
                        )
                        break
                    if not retrying:
                        retrying = True
                        self.mark_retrying(partition, +1)
                    await self._record(
                        nid, esc, target, channel_name, step, "retrying", attempt, exc.reason
                    )
                    await self.sleep(self.retry.backoff(attempt, self.rng))
                    continue
                final = await self._record(
                    nid, esc, target, channel_name, step, "delivered", attempt, None
                )
                now = self.clock()
                latency = (now - esc.created_at).total_seconds()
                self.metrics.latency.labels(channel_name).observe(max(0.0, latency))
                if step == "0" and esc.status == "firing" and esc.event_accepted_at is not None:
                    e2e = (now - esc.event_accepted_at).total_seconds()
                    self.metrics.end_to_end.labels(channel_name).observe(max(0.0, e2e))
                break
        finally:
            if retrying:
                self.mark_retrying(partition, -1)
        await self.written(lambda: self.ledger.record_sent(nid, final))

    # --- escalations --------------------------------------------------------------------------

    async def handle(self, esc: Escalation, partition: int) -> None:
        if is_canary(esc.agency_id):
            canary_returned(esc, self.metrics, self.clock())
            return
        async with self.locks[esc.escalation_id]:
            if esc.status == "firing":
                entry = self.ledger.open.get(esc.escalation_id)
                if entry is None:
                    targets = self.routing.route(esc)
                    entry = OpenEntry(
                        esc,
                        partition,
                        self.clock(),
                        targets=[(t.receiver, t.recipient_class) for t in targets],
                    )
                    ack = self.ledger.acks.get(esc.escalation_id)
                    entry.acked_by = ack.get("receiver") if ack else None
                    # Registered first: if we crash mid-delivery, the timer still knows it.
                    await self.ledger.put_open(entry)
                await asyncio.gather(
                    *(self.deliver(esc, t, "0", partition) for t in self.routing.route(esc))
                )
            else:
                entry = self.ledger.open.get(esc.escalation_id)
                notified = {r for r, _ in entry.targets} if entry else None
                targets = [
                    t
                    for t in self.routing.route(esc)
                    if t.route.send_resolved and (notified is None or t.receiver in notified)
                ]
                await asyncio.gather(
                    *(self.deliver(esc, t, "resolved", partition) for t in targets)
                )
                if esc.escalation_id in self.ledger.open:
                    await self.ledger.close_open(esc.escalation_id)
        self.metrics.open.set(len(self.ledger.open))

    async def tick(self, owned: set[int] | None) -> None:
        """Send the reminders and escalations that are due now."""
        now = self.clock()
        past_due = 0
        work = []
        for entry in list(self.ledger.open.values()):
            if owned is not None and entry.partition not in owned:
                continue
            esc = entry.escalation
            if entry.acked_by is None and esc.due_at is not None and esc.due_at <= now:
                past_due += 1
            for step, target in due_steps(entry, self.routing, now):
                work.append(self.deliver(esc, target, step))
        self.metrics.unacked_past_due.set(past_due)
        self.metrics.open.set(len(self.ledger.open))
        if work:
            await asyncio.gather(*work)
