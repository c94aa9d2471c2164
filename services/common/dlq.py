"""`carealert dlq replay`: put a dead-lettered record back where it came from, once fixed.

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

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
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
