"""What the gate writes for one consumed record: the record forwarded to care.events.v1, or its
dead letter on care.events.dlq. Pure (the loop in services.gate.worker does the writing)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.common import dlq, topics
from services.common.dlq import dlq_headers
from services.common.partitioning import partition_for
from services.gate.tenancy import Forward, Refused, judge

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


class Record(Protocol):
    """The parts of a consumed record the gate reads (aiokafka's ConsumerRecord has them)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(frozen=True)
class Write:
    """One record to produce. `reason` is None for a forwarded event, else the dead letter's
    reason code."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    partition: int | None
    reason: str | None = None


def own_headers(record: Record) -> Headers:
    """The record's headers, in order; a header without a value travels as an empty one (a
    Kafka client cannot produce a null header value)."""
    return [(name, value or b"") for name, value in record.headers or ()]


def forwarded(record: Record, key: bytes, partitions: int) -> Write:
    """The record as it was (value and headers), keyed for care.events.v1, on the partition
    Java's default partitioner gives that key as ingest writes it (services.common.partitioning).
    """
    return Write(
        topics.EVENTS,
        key,
        record.value or b"",
        own_headers(record),
        partition_for(key, partitions),
    )


def dead_letter(record: Record, refused: Refused) -> Write:
    """The dead letter: the original key, value and headers, then ours (services.common.dlq)."""
    headers = dlq_headers(
        refused.reason, record.topic, record.partition, record.offset, own_headers(record)
    )
    return Write(topics.EVENTS_DLQ, record.key, record.value or b"", headers, None, refused.code)


def plan(record: Record, partitions: int) -> Write:
    """The write one record owes: forwarded or dead-lettered. Never raises: a bug in the
    judgement dead-letters the record (`internal_error`) so the partition moves on."""
    try:
        verdict = judge(record.topic, record.value, record.headers or ())
    except Exception as exc:
        log.exception("judging a record failed", extra={"reason": type(exc).__name__})
        verdict = Refused("internal_error", f"internal error: {type(exc).__name__}")
    if isinstance(verdict, Forward):
        return forwarded(record, verdict.key, partitions)
    return dead_letter(record, verdict)


def refused_forward(record: Record, error: BaseException) -> Write:
    """The dead letter of a record Kafka refused on care.events.v1 for a reason a retry cannot
    fix (e.g. too large): the partition moves on."""
    reason = f"care.events.v1 refused the record ({type(error).__name__})"
    return dead_letter(record, Refused("forward_refused", reason))


def bare_dead_letter(write: Write, record: Record, error: BaseException) -> Write:
    """The dead letter of a record whose dead letter Kafka refused for good (too large): our
    headers only and no value (services.common.dlq.bare_dead_letter); the record stays where it
    was written (its `source-*` headers), for as long as that topic keeps it."""
    why = f"care.events.dlq refused the record ({type(error).__name__})"
    key, value, headers = dlq.bare_dead_letter(
        record.key, why, record.topic, record.partition, record.offset
    )
    return Write(topics.EVENTS_DLQ, key, value, headers, None, write.reason)
