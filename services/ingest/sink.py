"""Where accepted events go. `EventSink` is the role; `KafkaEventSink` the production
implementation, `MemoryEventSink` the one for unit tests of the HTTP layer."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from services.common import topics, tracing
from services.common.dlq import too_large
from services.common.events import EventBase, event_bytes
from services.common.kafka import KafkaClient, producer_config

log = logging.getLogger(__name__)

# A publish of at most this many events is handed to the producer on the event loop; a larger
# one in a worker thread, so that a 1,000-event batch does not hold up other requests' answers.
INLINE_EVENTS = 16
# Records per partition the producer puts in one batch, in bytes: a 1,000-event request fills
# one batch per partition instead of two dozen 16 KiB ones (kafka-python's default), each a
# wake-up of its sender thread and a record batch to checksum and send. Far below the broker's
# 1 MiB message limit.
BATCH_BYTES = 256 * 1024


class SinkUnavailable(RuntimeError):
    """The events were not acknowledged in time; the caller should answer 503."""


class SinkRefused(RuntimeError):
    """Kafka refused an event for good, for its size: sending it again cannot help; the caller
    should answer 413. (An event within services.common.events' limits is far smaller than
    Kafka takes: only a broker or topic configured with a lower limit refuses one.)"""


class EventSink(Protocol):
    async def publish(self, events: Sequence[EventBase], trace: str | None = None) -> None:
        """Return only after every event is durably written. Raises SinkUnavailable, or
        SinkRefused for an event Kafka refuses as too large.
        `trace`: a valid W3C traceparent the request came with, kept as a record header."""

    def ready(self) -> bool:
        """True if the backing store looks reachable right now."""

    def close(self) -> None: ...


class MemoryEventSink:
    """Keeps published events in a list; `available=False` makes publish fail like Kafka down,
    `max_record_bytes` refuses larger events like a broker with that limit."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.traces: list[str | None] = []
        self.available = True
        self.max_record_bytes: int | None = None

    async def publish(self, events: Sequence[EventBase], trace: str | None = None) -> None:
        if not self.available:
            raise SinkUnavailable("memory sink switched off")
        limit = self.max_record_bytes
        if limit is not None and any(len(event_bytes(e)) > limit for e in events):
            raise SinkRefused("too_large")
        self.published.extend((e.key, event_bytes(e)) for e in events)
        self.traces.extend(trace for _ in events)

    def ready(self) -> bool:
        return self.available

    def close(self) -> None:
        pass


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if not fut.done():
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)


class KafkaEventSink:
    """kafka-python producer, acks=all and idempotent, keyed `{agency_id}:{child_id}`.

    Each record's delivery callback resolves an asyncio future on the request's loop, so a
    request waits for its own acks without holding a thread.
    """

    def __init__(self, kafka: KafkaClient, *, timeout_s: float, topic: str = topics.EVENTS):
        self._kafka = kafka
        self._timeout_s = timeout_s
        self._topic = topic
        self._producer = self._new_producer()
        self._last_reset = time.monotonic()
        # Set when a publish failed and the broker did not even accept a connection: requests
        # are then answered 503 at once, re-checking reachability at most once a second.
        self._unreachable = False
        self._checked_at = 0.0

    def _new_producer(self) -> KafkaProducer:
        config = producer_config(
            self._kafka, client_id="carealert-ingest", timeout_s=self._timeout_s
        )
        producer = KafkaProducer(**{**config, "batch_size": BATCH_BYTES})
        # Fetch metadata now so that send() does not block a request on the first call.
        producer.partitions_for(self._topic)
        return producer

    def _reset_if_stuck(self) -> None:
        """An idempotent producer whose batches expired while the broker was away can stay
        wedged after the broker is back. If the broker answers but we still fail, start a new
        producer (at most every 10 s); requests in flight on the old one fail with 503."""
        if time.monotonic() - self._last_reset < 10 or not self.ready():
            return
        self._last_reset = time.monotonic()
        old = self._producer
        try:
            self._producer = self._new_producer()
        except KafkaError:
            return
        log.warning("producer replaced after failures with the broker reachable")
        try:
            old.close(timeout=0)
        except Exception:  # closing a wedged producer may time out; it is dropped either way
            log.warning("closing the old producer failed", extra={"reason": "close_timeout"})

    def _send_all(
        self,
        events: Sequence[EventBase],
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[None],
        trace: str | None,
    ) -> None:
        """Send every event; settle `done` once, when all are acked or the first one fails.
        (One wake-up of the event loop per request, not one per record.)"""
        remaining = [len(events)]
        lock = threading.Lock()

        def ok(_md: Any) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                loop.call_soon_threadsafe(_settle, done, None)

        def failed(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, done, exc)

        headers = [(tracing.HEADER, trace.encode())] if trace else None
        for event in events:
            kf = self._producer.send(
                self._topic, key=event.key.encode(), value=event_bytes(event), headers=headers
            )
            kf.add_callback(ok)
            kf.add_errback(failed)

    def _known_unreachable(self) -> bool:
        """True if the broker was found unreachable and still is; looks again (a connection
        attempt, up to a second) at most once a second: call it off the event loop."""
        if not self._unreachable:
            return False
        now = time.monotonic()
        if now - self._checked_at < 1.0:
            return True
        self._checked_at = now
        self._unreachable = not self.ready()
        return self._unreachable

    def _send_blocks(self, events: Sequence[EventBase]) -> bool:
        """Whether handing `events` to the producer may hold up the event loop: many events, or
        a topic whose partitions the producer does not know yet (send() then waits for
        metadata, up to max_block_ms)."""
        if len(events) > INLINE_EVENTS:
            return True
        # kafka-python has no public lookup that does not wait: read its cluster metadata.
        metadata = getattr(self._producer, "_metadata", None)
        return metadata is None or metadata.partitions_for_topic(self._topic) is None

    async def publish(self, events: Sequence[EventBase], trace: str | None = None) -> None:
        if self._unreachable and await asyncio.to_thread(self._known_unreachable):
            raise SinkUnavailable("unreachable")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        try:
            if self._send_blocks(events):
                await asyncio.to_thread(self._send_all, events, loop, done, trace)
            else:
                self._send_all(events, loop, done, trace)
            await asyncio.wait_for(done, timeout=self._timeout_s + 1)
        except (KafkaError, TimeoutError) as exc:
            done.cancel()
            log.warning("publish failed", extra={"reason": type(exc).__name__})
            if too_large(exc):
                raise SinkRefused("too_large") from exc
            if not await asyncio.to_thread(self.ready):
                self._unreachable = True
                self._checked_at = time.monotonic()
                raise SinkUnavailable("unreachable") from exc
            await asyncio.to_thread(self._reset_if_stuck)
            raise SinkUnavailable(type(exc).__name__) from exc

    def ready(self) -> bool:
        for server in self._kafka.bootstrap:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                    return True
            except OSError:
                continue
        return False

    def close(self) -> None:
        self._producer.close(timeout=5)
