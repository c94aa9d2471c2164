"""What notify remembers and writes, behind small interfaces with in-memory twins.

`NotificationLog`: the sent-log (one entry per notification id, checked before and written
after each delivery), the open escalations and the acknowledgements. The Kafka implementation is
services.notify.ledger.Ledger (compacted topics); `MemoryNotificationLog` is its twin for unit
tests. `RecordWriter`: how notification and dead-letter records are written (an
`AIOKafkaProducer` is one); `MemoryRecordWriter` keeps them in a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.notify.records import Ack, NotificationRecord, OpenEntry
from services.notify.silences import Silence


class NotificationLog(Protocol):
    sent: set[str]  # notification ids whose outcome is final
    open: dict[str, OpenEntry]
    acks: dict[str, list[Ack]]  # escalation id → its acknowledgements, first first
    outcomes: dict[str, list[NotificationRecord]]  # open escalation id → final records
    silences: dict[str, Silence]  # silence id → the silence or maintenance window

    async def record_sent(self, nid: str, record: NotificationRecord) -> None:
        """Remember that a notification's outcome is final (durably, before returning)."""

    async def put_open(self, entry: OpenEntry) -> None:
        """Remember a firing escalation until it is resolved."""

    async def close_open(self, escalation_id: str) -> None:
        """Forget a resolved escalation."""

    async def record_ack(self, ack: Ack) -> None:
        """Remember who acknowledged an escalation (reminders and escalation steps stop)."""

    async def put_silence(self, silence: Silence) -> None:
        """Remember a silence or maintenance window, or its expiry (durably)."""


def keep_ack(acks: dict[str, list[Ack]], open_entries: dict[str, OpenEntry], ack: Ack) -> None:
    """Remember `ack` unless its escalation has one by the same person (or receiver) already,
    at or before it: each one's first acknowledgement stands (another notify instance's, read
    back, may be earlier). Others' are added, never overwriting."""
    known = acks.setdefault(ack.escalation_id, [])
    same = next((a for a in known if a.key == ack.key), None)
    if same is not None:
        if same.acked_at <= ack.acked_at:
            return
        known.remove(same)
    known.append(ack)
    known.sort(key=lambda a: a.acked_at)
    entry = open_entries.get(ack.escalation_id)
    if entry is not None:
        entry.acked_by = stopped_by(known)


def keep_outcome(outcomes: dict[str, list[NotificationRecord]], record: NotificationRecord) -> None:
    """Remember a notification's final record with its escalation's (once per notification)."""
    known = outcomes.setdefault(record.escalation_id, [])
    if all(r.notification_id != record.notification_id for r in known):
        known.append(record)


def stopped_by(acks: list[Ack]) -> str | None:
    """Who stopped the reminders and chain: the first acknowledgement that stops them."""
    return next((a.who for a in acks if a.stops), None)


class MemoryNotificationLog:
    """The in-memory twin: survives a "restart" by being handed to the next Notifier."""

    def __init__(self) -> None:
        self.sent: set[str] = set()
        self.open: dict[str, OpenEntry] = {}
        self.acks: dict[str, list[Ack]] = {}
        self.outcomes: dict[str, list[NotificationRecord]] = {}
        self.silences: dict[str, Silence] = {}

    async def record_sent(self, nid: str, record: NotificationRecord) -> None:
        self.sent.add(nid)
        keep_outcome(self.outcomes, record)

    async def put_open(self, entry: OpenEntry) -> None:
        self.open[entry.escalation.escalation_id] = entry

    async def close_open(self, escalation_id: str) -> None:
        self.open.pop(escalation_id, None)
        self.outcomes.pop(escalation_id, None)

    async def record_ack(self, ack: Ack) -> None:
        keep_ack(self.acks, self.open, ack)

    async def put_silence(self, silence: Silence) -> None:
        self.silences[silence.silence_id] = silence


class RecordWriter(Protocol):
    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Write one record and return once the store acknowledged it."""


@dataclass(frozen=True)
class Written:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class MemoryRecordWriter:
    """The in-memory twin of a Kafka producer: every record, in order."""

    def __init__(self) -> None:
        self.records: list[Written] = []

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,  # noqa: ARG002  # one partition
        timestamp_ms: int | None = None,  # noqa: ARG002  # not kept
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        self.records.append(Written(topic, key, value, tuple(headers or ())))
