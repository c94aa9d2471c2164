"""Dead letters: the headers every one carries and the bare form of one too large to hold its
record's bytes (`dlq_headers`, `bare_dead_letter`: one definition for rules and the gate), and
`carealert dlq replay`: put a dead-lettered record back where it came from, once fixed.

A DLQ record (care.events.dlq, care.escalations.dlq) keeps the original key and bytes and the
headers `error`, `source-topic`, `source-partition`, `source-offset`, after the original record's
own headers. Replaying reads that record,
takes the corrected value (a file) or the original bytes, checks it against the contract of the
source topic (an Event, or an Escalation), and publishes it to the source topic with the original
key. Nothing invalid is ever re-published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiokafka.errors import MessageSizeTooLargeError as AIOMessageSizeTooLarge
from aiokafka.errors import RecordListTooLargeError as AIORecordListTooLarge
from aiokafka.errors import RecordTooLargeError as AIORecordTooLarge
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from pydantic import ValidationError

from services.common import topics
from services.common.escalations import Escalation
from services.common.events import EventInvalid, parse_event
from services.common.kafka import KafkaClient
from services.common.unreadable import MARK

DLQ_TOPICS = {topics.EVENTS_DLQ: topics.EVENTS, topics.ESCALATIONS_DLQ: topics.ESCALATIONS}


OURS = ("error", "source-topic", "source-partition", "source-offset")
ORIGINAL_PREFIX = "original-"

TOMBSTONE_REASON = "record has no value (a tombstone): records on this topic are never deleted"

MAX_RECORD_BYTES = 1_000_000
"""The largest record carealert writes, counted as Kafka clients count it before sending (key,
value, headers and the framing of a batch of one): faust's producer refuses a larger one (the
rules app sets `producer_max_request_size` to this), the broker's default `message.max.bytes`
(1,048,588) is above it. A record Kafka consumed may be larger (up to the broker's limit): its
dead letter then goes without its value (`bare_dead_letter`)."""

MAX_BARE_KEY_BYTES = 1024
"""A bare dead letter keeps the record's key up to this size (an event's key is at most 577
bytes); a longer key is left out too, so that the dead letter itself always fits."""

TOO_LARGE_ERRORS: tuple[type[BaseException], ...] = (
    AIOMessageSizeTooLarge,
    AIORecordTooLarge,
    AIORecordListTooLarge,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
"""Kafka's refusals of a record for its size (by the producer itself, or by the broker)."""

Headers = list[tuple[str, bytes]]


def record_size(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> int:
    """The size a producer gives a record of its own (what `max_request_size` is checked
    against)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def size_refusal(exc: BaseException) -> BaseException | None:
    """Kafka's refusal of a record for its size that `exc` is or wraps (faust raises
    ProducerSendError from it), or None."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, TOO_LARGE_ERRORS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def too_large(exc: BaseException) -> bool:
    """Whether Kafka refused a record for its size (`exc`, or an error it wraps)."""
    return size_refusal(exc) is not None


def bare_dead_letter(
    key: bytes | None, why: str, topic: str, partition: int, offset: int
) -> tuple[bytes | None, bytes, Headers]:
    """(key, value, headers) of a dead letter Kafka refuses (or would refuse) with the record's
    bytes: no value and none of the record's own headers, only ours (`error` says why and that
    its bytes are only on its source topic, for as long as that topic keeps them), and the key
    unless it is longer than MAX_BARE_KEY_BYTES. It always fits."""
    reason = f"{why}; its bytes are only on its source topic"
    kept = key if key is not None and len(key) <= MAX_BARE_KEY_BYTES else None
    return kept, b"", dlq_headers(reason, topic, partition, offset)


def dlq_headers(
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    original: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of every dead letter (CONTRACT: `error`, `source-topic`, `source-partition`,
    `source-offset`) after the record's own headers, which travel with it unchanged except
    that one named like ours is kept as `original-<name>`. `reason` holds field paths and
    problems, never values."""
    kept: list[tuple[str, bytes]] = []
    if original:
        items = original.items() if isinstance(original, Mapping) else original
        for name, value in items:
            if name == MARK:
                continue  # the stand-in's own marker: the reason is in `error`
            name = ORIGINAL_PREFIX + name if name.lower() in OURS else name
            kept.append((name, bytes(value or b"")))
    return [
        *kept,
        ("error", reason.encode()),
        ("source-topic", topic.encode()),
        ("source-partition", str(partition).encode()),
        ("source-offset", str(offset).encode()),
    ]


def first_problem(exc: ValidationError) -> str:
    """`<field path>: <problem>` of a pydantic error's first entry, without the input value."""
    first = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "(record)"
    return f"{where}: {first['msg']}"


class ReplayRefused(ValueError):
    """The record can not be replayed; the message says why (never the record's content)."""


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    """In the order they were written (names may repeat)."""

    def header(self, name: str) -> bytes | None:
        """The last header of that name (ours are written last), or None."""
        found = [value for key, value in self.headers if key == name]
        return found[-1] if found else None


def _check_event(value: bytes, key: bytes | None) -> None:
    try:
        event = parse_event(value)
    except EventInvalid as exc:
        raise ReplayRefused(f"still not a valid event: {exc.reason}") from None
    if key != event.key.encode():
        raise ReplayRefused("the record key is not '{agency_id}:{child_id}' of the event")


def _check_escalation(value: bytes, key: bytes | None) -> None:
    try:
        esc = Escalation.model_validate_json(value)
    except ValidationError as exc:
        raise ReplayRefused(f"still not a valid escalation: {first_problem(exc)}") from None
    if key != esc.key.encode():
        raise ReplayRefused("the record key is not '{agency_id}:{child_id}' of the escalation")


CHECKS: dict[str, Callable[[bytes, bytes | None], None]] = {
    topics.EVENTS: _check_event,
    topics.ESCALATIONS: _check_escalation,
}


def checked_replay(dead: DeadLetter, fixed: bytes | None) -> tuple[str, bytes | None, bytes]:
    """(source topic, key, value) to publish, or ReplayRefused. Pure."""
    source = (dead.header("source-topic") or b"").decode(errors="replace")
    if source not in CHECKS:
        raise ReplayRefused("the record has no source-topic header carealert can replay to")
    value = fixed if fixed is not None else dead.value
    CHECKS[source](value, dead.key)
    return source, dead.key, value


def read_dead_letter(
    kafka: KafkaClient, dlq_topic: str, partition: int, offset: int, timeout_s: float = 10.0
) -> DeadLetter:
    if dlq_topic not in DLQ_TOPICS:
        raise ReplayRefused(f"{dlq_topic} is not a dead-letter topic ({', '.join(DLQ_TOPICS)})")
    consumer = KafkaConsumer(
        **kafka.kafka_python(enable_auto_commit=False, isolation_level="read_committed")
    )
    try:
        tp = TopicPartition(dlq_topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=1)
        for record in batch.get(tp, []):
            if record.offset == offset:
                return DeadLetter(record.key, record.value or b"", tuple(record.headers or ()))
        raise ReplayRefused(f"no record at {dlq_topic} partition {partition} offset {offset}")
    finally:
        consumer.close()


def original_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers the record had before it was dead-lettered (ours removed, renamed ones
    restored), so a replayed record travels on with its trace context. Pure."""
    out: list[tuple[str, bytes]] = []
    for name, value in dead.headers:
        if name in OURS:
            continue
        renamed = name.removeprefix(ORIGINAL_PREFIX)
        out.append((renamed if renamed.lower() in OURS else name, value))
    return out


def replay(
    kafka: KafkaClient, dlq_topic: str, partition: int, offset: int, fixed: bytes | None
) -> str:
    """Re-publish one dead letter (fixed or as it was); return where it went."""
    dead = read_dead_letter(kafka, dlq_topic, partition, offset)
    source, key, value = checked_replay(dead, fixed)
    producer = KafkaProducer(**kafka.kafka_python(acks="all", enable_idempotence=True))
    try:
        headers = original_headers(dead)
        sent = producer.send(source, key=key, value=value, headers=headers).get(timeout=30)
    finally:
        producer.close()
    return f"{source} partition {sent.partition} offset {sent.offset}"
