"""One consumed record, judged from the record alone: the input to evaluate or why it is a dead
letter, the partition it belongs on, where it was first written. No I/O, no state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common import topics
from services.common.dlq import (
    MAX_RECORD_BYTES,
    TOMBSTONE_REASON,
    Headers,
    bare_dead_letter,
    dlq_headers,
    record_size,
)
from services.common.escalations import Escalation
from services.common.events import EventInvalid, parse_event
from services.common.partitioning import partition_for
from services.common.unreadable import stand_in_reason
from services.rules import statecodec
from services.rules.core import Input, Tick

REKEYED_FROM = ("rekeyed-from-partition", "rekeyed-from-offset")


@dataclass(frozen=True)
class Rejected:
    """A record that goes to the DLQ: the `code` of the dlq metric's label and the `reason`
    the dead letter carries."""

    code: str
    reason: str


def decode(message: Any, ticks_topic: str) -> Input | Rejected:
    """The event (or tick) a record carries, or why it cannot be evaluated."""
    if message.topic == ticks_topic:
        return Tick()
    unreadable = stand_in_reason(message.headers)
    if unreadable is not None:  # a stand-in for a record that could not be decoded
        return Rejected("unreadable_record", unreadable)
    if message.value is None:
        return Rejected("tombstone", TOMBSTONE_REASON)
    # Plausible timestamps are judged against when Kafka took the record.
    taken = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
    try:
        item = parse_event(message.value or b"", now=taken)
    except EventInvalid as exc:
        code = "undecodable" if exc.errors[0].type == "json_invalid" else "invalid_event"
        return Rejected(code, exc.reason)
    if message.key != item.key.encode():
        return Rejected("key_mismatch", "message key is not '{agency_id}:{child_id}' of the event")
    return item


def misplaced(message: Any, partitions: int) -> int | None:
    """The partition an event record belongs on, if its producer put it elsewhere."""
    if message.topic != topics.EVENTS or message.key is None:
        return None
    belongs = partition_for(message.key, partitions)
    return belongs if belongs != message.partition else None


def rekeyed_headers(message: Any) -> list[tuple[str, bytes]]:
    """Where a forwarded record was first written on care.events.v1 (never evaluated)."""
    return list(
        zip(
            REKEYED_FROM,
            (str(message.partition).encode(), str(message.offset).encode()),
            strict=True,
        )
    )


def first_written(message: Any) -> tuple[str, int, int, list[tuple[str, bytes]]]:
    """(topic, partition, offset, own headers) of a record as its producer wrote it: a
    forwarded record is traced back to care.events.v1, so its dead letter can be replayed."""
    headers = list(message.headers or ())
    found = {name: value for name, value in headers if name in REKEYED_FROM}
    try:
        partition, offset = (int(found[name]) for name in REKEYED_FROM)
    except (KeyError, ValueError):
        return message.topic, message.partition, message.offset, headers
    own = [(name, value) for name, value in headers if name not in REKEYED_FROM]
    return topics.EVENTS, partition, offset, own


TOO_LARGE = "too_large"
"""The code of a dead letter written without its value, and of an event whose outputs would
be too large for Kafka."""


def dlq_record(
    message: Any, rejected: Rejected, rekeyed_topic: str, refused: BaseException | None = None
) -> tuple[bytes | None, bytes, Headers, str]:
    """(key, value, headers, code) of a record's dead letter, naming where it was first written.
    A copy larger than MAX_RECORD_BYTES, or one Kafka `refused` already, is written bare
    (services.common.dlq.bare_dead_letter) with code `too_large`, its `error` naming the code
    and reason it was dead-lettered for."""
    topic, partition, offset, own = (
        first_written(message)
        if message.topic == rekeyed_topic
        else (message.topic, message.partition, message.offset, message.headers)
    )
    key, value = message.key, message.value or b""
    headers = dlq_headers(rejected.reason, topic, partition, offset, own)
    size = record_size(key, value, headers)
    if refused is None and size <= MAX_RECORD_BYTES:
        return key, value, headers, rejected.code
    why = (
        f"care.events.dlq refused the record ({type(refused).__name__})"
        if refused is not None
        else f"the record is too large for care.events.dlq ({size} bytes with its headers)"
    )
    why += f"; dead-lettered as {rejected.code}: {rejected.reason}"
    return (*bare_dead_letter(key, why, topic, partition, offset), TOO_LARGE)


def too_large_to_forward(message: Any, headers: Headers) -> Rejected | None:
    """Why a record cannot be forwarded as it is, with `headers`, or None: it is larger than
    carealert writes (a producer of its own may write records up to the broker's limit)."""
    size = record_size(message.key, message.value, headers)
    if size <= MAX_RECORD_BYTES:
        return None
    reason = (
        f"the record is too large to forward to the partition of its key ({size} of"
        f" {MAX_RECORD_BYTES} bytes)"
    )
    return Rejected(TOO_LARGE, reason)


def too_large_to_write(
    key: bytes,
    state: bytes | None,
    escalations: list[tuple[bytes, bytes, Headers]],
    state_json: int = 0,
) -> Rejected | None:
    """Why what an event makes rules write cannot be written, or None: the child's new state
    (`state`, as stored) or one of its escalations (key, value, headers) is larger than
    MAX_RECORD_BYTES, or the state's JSON (`state_json` bytes, compressed in `state`) larger
    than a reader decompresses (statecodec.MAX_DECODED_BYTES). Checked before anything is
    written, so that such an event is dead-lettered (not applied) instead of stopping the
    worker, or writing a state no worker could read back."""
    if state is not None and (size := record_size(key, state, [])) > MAX_RECORD_BYTES:
        return Rejected(
            TOO_LARGE, f"the child's state would be too large ({size} of {MAX_RECORD_BYTES} bytes)"
        )
    if state_json > statecodec.MAX_DECODED_BYTES:
        return Rejected(
            TOO_LARGE,
            f"the child's state would be too large to read back ({state_json} of "
            f"{statecodec.MAX_DECODED_BYTES} bytes of JSON)",
        )
    for k, v, h in escalations:
        if (size := record_size(k, v, h)) > MAX_RECORD_BYTES:
            return Rejected(
                TOO_LARGE, f"an escalation would be too large ({size} of {MAX_RECORD_BYTES} bytes)"
            )
    return None


def stamp_accepted(out: list[Escalation], message: Any) -> list[Escalation]:
    """Escalations caused by an event carry the time Kafka accepted that event."""
    if not out or not message.timestamp:
        return out
    accepted = datetime.fromtimestamp(message.timestamp, UTC)
    return [e.model_copy(update={"event_accepted_at": accepted}) for e in out]
