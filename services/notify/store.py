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


class NotificationLog(Protocol):
    sent: set[str]  # notification ids whose outcome is final
    open: dict[str, OpenEntry]
    acks: dict[str, Ack]

    async def record_sent(self, nid: str, record: NotificationRecord) -> None:
        """Remember that a notification's outcome is final (durably, before returning)."""

    async def put_open(self, entry: OpenEntry) -> None:
        """Remember a firing escalation until it is resolved."""

    async def close_open(self, escalation_id: str) -> None:
        """Forget a resolved escalation."""

    async def record_ack(self, ack: Ack) -> None:
        """Remember who acknowledged an escalation (reminders and escalation steps stop)."""


def keep_first_ack(acks: dict[str, Ack], open_entries: dict[str, OpenEntry], ack: Ack) -> None:
    """Remember `ack` unless an earlier one of its escalation is known: the first
    acknowledgement stands (another notify instance's, read back, may be earlier)."""
    first = acks.get(ack.escalation_id)
    if first is not None and first.acked_at <= ack.acked_at:
        return
    acks[ack.escalation_id] = ack
    if ack.escalation_id in open_entries:
        open_entries[ack.escalation_id].acked_by = ack.receiver


class MemoryNotificationLog:
    """The in-memory twin: survives a "restart" by being handed to the next Notifier."""

    def __init__(self) -> None:
        self.sent: set[str] = set()
        self.open: dict[str, OpenEntry] = {}
        self.acks: dict[str, Ack] = {}

    async def record_sent(self, nid: str, record: NotificationRecord) -> None:  # noqa: ARG002
        self.sent.add(nid)

    async def put_open(self, entry: OpenEntry) -> None:
        self.open[entry.escalation.escalation_id] = entry

    async def close_open(self, escalation_id: str) -> None:
        self.open.pop(escalation_id, None)

    async def record_ack(self, ack: Ack) -> None:
        keep_first_ack(self.acks, self.open, ack)


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
