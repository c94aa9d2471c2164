"""The gate's pure parts: the tenancy judgement of one record (services.gate.tenancy), the
write it owes (services.gate.writes), the agency topic names and the ACLs a grant makes; and
the loop's writes against an in-memory producer (services.gate.worker)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)
from hypothesis import given
from hypothesis import strategies as st
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType
from prometheus_client import CollectorRegistry

from services.common import topics
from services.common.dlq import OURS, TOMBSTONE_REASON
from services.common.partitioning import partition_for
from services.common.unreadable import MARK, Held
from services.gate import grants
from services.gate.metrics import GateMetrics
from services.gate.tenancy import REASONS, Forward, Refused, judge
from services.gate.worker import Gate
from services.gate.writes import Write, bare_dead_letter, plan, refused_forward

TOPIC_A = "care.events.in.county-a"


def event(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": "missing.opened",
        "agency_id": "county-a",
        "child_id": "C-1",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


# --- the tenancy judgement ----------------------------------------------------------------------

REFUSED: list[tuple[str, bytes | None, str, str]] = [
    # (case, value, reason code, the dead letter's `error` text)
    ("not JSON", b"\x00\xffgarbage", "undecodable", "not UTF-8 JSON"),
    ("not UTF-8", b'{"agency_id": "county-a\xff"}', "undecodable", "not UTF-8 JSON"),
    ("truncated JSON", b'{"agency_id": "county-a"', "undecodable", "not UTF-8 JSON"),
    ("absurdly deep", b"[" * 100_000 + b"]" * 100_000, "undecodable", "not UTF-8 JSON"),
    ("empty", b"", "undecodable", "not UTF-8 JSON"),
    ("a list", b'[{"agency_id": "county-a"}]', "no_agency_id", "the value is not a JSON object"),
    ("a string", b'"county-a"', "no_agency_id", "the value is not a JSON object"),
    ("null", b"null", "no_agency_id", "the value is not a JSON object"),
    ("no agency_id", event(agency_id=...), "no_agency_id", "agency_id: missing or not a string"),
    (
        "agency_id a number",
        event(agency_id=7),
        "no_agency_id",
        "agency_id: missing or not a string",
    ),
    ("agency_id null", event(agency_id=None), "no_agency_id", "agency_id: missing or not a string"),
    (
        "another agency",
        event(agency_id="county-b"),
        "agency_mismatch",
        "agency_id is not the agency of the topic",
    ),
    (
        "another case",
        event(agency_id="County-A"),
        "agency_mismatch",
        "agency_id is not the agency of the topic",
    ),
    (
        "a prefix of the agency",
        event(agency_id="county"),
        "agency_mismatch",
        "agency_id is not the agency of the topic",
    ),
    (
        "padded",
        event(agency_id=" county-a"),
        "agency_mismatch",
        "agency_id is not the agency of the topic",
    ),
    (
        "the agency nested, not at the top",
        json.dumps({"payload": {"agency_id": "county-a"}, "child_id": "C-1"}).encode(),
        "no_agency_id",
        "agency_id: missing or not a string",
    ),
    ("no child_id", event(child_id=...), "no_child_id", "child_id: missing, empty or not a string"),
    (
        "empty child_id",
        event(child_id=""),
        "no_child_id",
        "child_id: missing, empty or not a string",
    ),
    (
        "child_id a number",
        event(child_id=5),
        "no_child_id",
        "child_id: missing, empty or not a string",
    ),
    (
        "child_id a lone surrogate",
        b'{"agency_id": "county-a", "child_id": "\\ud800"}',
        "no_child_id",
        "child_id: not valid Unicode",
    ),
    (
        # json.loads and pydantic both keep the last of two names: the rules worker would read
        # the other agency; the gate refuses what two readers could read two ways
        "agency_id twice",
        b'{"agency_id": "county-a", "child_id": "C-1", "agency_id": "county-b"}',
        "ambiguous_tenancy",
        "agency_id or child_id appears more than once",
    ),
    (
        "agency_id twice, the same",
        b'{"agency_id": "county-a", "child_id": "C-1", "agency_id": "county-a"}',
        "ambiguous_tenancy",
        "agency_id or child_id appears more than once",
    ),
    (
        "child_id twice",
        b'{"agency_id": "county-a", "child_id": "C-1", "child_id": "C-2"}',
        "ambiguous_tenancy",
        "agency_id or child_id appears more than once",
    ),
    ("a tombstone", None, "tombstone", TOMBSTONE_REASON),
]


@pytest.mark.parametrize(
    ("value", "code", "reason"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_record_that_is_not_the_topics_agencys_is_refused(
    value: bytes | None, code: str, reason: str
) -> None:
    assert judge(TOPIC_A, value) == Refused(code, reason)
    assert code in REASONS


FORWARDED: list[tuple[str, bytes, bytes]] = [
    ("a valid event", event(), b"county-a:C-1"),
    # the rest of the event is the rules worker's to check (it dead-letters invalid events)
    ("an invalid event of the agency", event(event_type="no.such.type"), b"county-a:C-1"),
    ("only the tenancy fields", b'{"agency_id":"county-a","child_id":"C-9"}', b"county-a:C-9"),
    (
        "a duplicate elsewhere",
        b'{"agency_id":"county-a","child_id":"C-1","x":1,"x":2}',
        b"county-a:C-1",
    ),
    (
        "nested duplicates",
        b'{"agency_id":"county-a","child_id":"C-1","p":{"agency_id":"b","agency_id":"c"}}',
        b"county-a:C-1",
    ),
    ("a non-ASCII child id", event(child_id="C-é"), "county-a:C-é".encode()),
    ("an escaped agency id", b'{"agency_id":"county\\u002da","child_id":"C-1"}', b"county-a:C-1"),
]


@pytest.mark.parametrize(
    ("value", "key"), [r[1:] for r in FORWARDED], ids=[r[0] for r in FORWARDED]
)
def test_a_record_of_the_topics_agency_is_forwarded_keyed_agency_and_child(
    value: bytes, key: bytes
) -> None:
    assert judge(TOPIC_A, value) == Forward(key)


def test_the_agency_is_the_topics_never_the_records() -> None:
    value = event(agency_id="county-b")
    assert judge("care.events.in.county-b", value) == Forward(b"county-b:C-1")
    assert judge(TOPIC_A, value).code == "agency_mismatch"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "topic",
    [
        "care.events.v1",
        "care.events.in.",
        "care.events.in.a",  # agency ids are 2 to 64 characters
        "care.events.in.County-A",
        "care.events.in." + "a" * 65,
        "care.events.in.county_a",
        "xcare.events.in.county-a",
    ],
)
def test_a_record_of_another_topic_is_refused(topic: str) -> None:
    assert judge(topic, event()) == Refused(
        "not_an_input_topic", "the record's topic is not an agency input topic"
    )


def test_the_canary_agency_has_no_input_topic() -> None:
    value = event(agency_id="carealert-canary")
    assert judge("care.events.in.carealert-canary", value) == Refused(
        "reserved_agency", "the canary agency posts through ingest only"
    )


def test_a_stand_in_for_an_unreadable_record_is_dead_lettered_with_its_reason() -> None:
    reason = b"record could not be decoded (CorruptRecordError); its bytes are not recoverable"
    assert judge(TOPIC_A, None, [("traceparent", b"x"), (MARK, reason)]) == Refused(
        "unreadable_record", reason.decode()
    )


def test_a_producer_cannot_choose_a_dead_letters_reason_with_the_stand_in_header() -> None:
    """Only the exact form services.common.fetching writes is a stand-in: a producer's own
    `carealert-unreadable` header text never becomes the reason of a dead letter."""
    forged = b"record could not be decoded (Jane Doe, 15, 12 Elm St); its bytes are not recoverable"
    for headers in ([(MARK, forged)], [(MARK, b"Jane Doe")]):
        assert judge(TOPIC_A, event(), headers) == Forward(b"county-a:C-1")


SECRET = "Jane-Q-Doe-1999"


@pytest.mark.parametrize(
    "value",
    [
        event(agency_id=SECRET),
        event(child_id=...),
        json.dumps({"agency_id": "county-a", "child_id": 1, "name": SECRET}).encode(),
        f'{{"agency_id": "{SECRET}"'.encode(),
        f'["{SECRET}"]'.encode(),
    ],
)
def test_a_reason_never_holds_a_value_of_the_record(value: bytes) -> None:
    verdict = judge(TOPIC_A, value)
    assert isinstance(verdict, Refused)
    assert SECRET not in verdict.reason


@given(st.binary(max_size=300))
def test_any_bytes_are_judged_without_raising(value: bytes) -> None:
    assert isinstance(judge(TOPIC_A, value), Forward | Refused)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


MISSING = object()


@given(
    agency=st.from_regex(r"[a-z0-9-]{2,12}", fullmatch=True),
    agency_id=st.sampled_from(["the topic's", MISSING]) | st.text(max_size=12) | JSON,
    child_id=st.sampled_from([MISSING]) | st.text(max_size=12) | JSON,
    rest=st.dictionaries(st.text(max_size=10), JSON, max_size=3),
)
def test_only_an_object_of_the_topics_agency_with_a_child_is_forwarded(
    agency: str, agency_id: Any, child_id: Any, rest: dict[str, Any]
) -> None:
    obj = {k: v for k, v in rest.items() if k not in ("agency_id", "child_id")}
    if agency_id is not MISSING:
        obj["agency_id"] = agency if agency_id == "the topic's" else agency_id
    if child_id is not MISSING:
        obj["child_id"] = child_id
    verdict = judge(topics.agency_input(agency), json.dumps(obj).encode())
    if obj.get("agency_id") == agency and isinstance(child_id, str) and child_id:
        assert verdict == Forward(f"{agency}:{child_id}".encode())
    else:
        assert isinstance(verdict, Refused)


# --- the write a record owes -------------------------------------------------------------------


@dataclass(frozen=True)
class FakeRecord:
    value: bytes | None
    topic: str = TOPIC_A
    partition: int = 2
    offset: int = 41
    key: bytes | None = b"whatever-the-agency-chose"
    headers: tuple[tuple[str, bytes | None], ...] = field(default=())


def test_a_forwarded_record_keeps_its_bytes_and_headers_on_the_keys_partition() -> None:
    value = event()
    headers = (("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"), ("x", b"y"))
    write = plan(FakeRecord(value, headers=headers), partitions=6)
    assert write == Write(
        topics.EVENTS,
        b"county-a:C-1",
        value,
        list(headers),
        partition_for(b"county-a:C-1", 6),
        None,
    )


def test_a_header_without_a_value_travels_as_an_empty_one() -> None:
    write = plan(FakeRecord(event(), headers=(("h", None),)), partitions=6)
    assert write.headers == [("h", b"")]


def test_a_refused_record_is_dead_lettered_as_it_came_with_our_headers_after_its_own() -> None:
    value = event(agency_id="county-b")
    record = FakeRecord(value, headers=(("traceparent", b"t"), ("error", b"theirs")))
    write = plan(record, partitions=6)
    assert write == Write(
        topics.EVENTS_DLQ,
        b"whatever-the-agency-chose",
        value,
        [
            ("traceparent", b"t"),
            ("original-error", b"theirs"),
            ("error", b"agency_id is not the agency of the topic"),
            ("source-topic", TOPIC_A.encode()),
            ("source-partition", b"2"),
            ("source-offset", b"41"),
        ],
        None,
        "agency_mismatch",
    )


def test_a_tombstone_is_dead_lettered_with_an_empty_value() -> None:
    write = plan(FakeRecord(None, key=None), partitions=6)
    assert (write.topic, write.key, write.value, write.reason) == (
        topics.EVENTS_DLQ,
        None,
        b"",
        "tombstone",
    )


def test_a_bug_in_the_judgement_dead_letters_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr("services.gate.writes.judge", broken)
    write = plan(FakeRecord(event()), partitions=6)
    assert (write.topic, write.reason) == (topics.EVENTS_DLQ, "internal_error")
    assert dict(write.headers)["error"] == b"internal error: KeyError"


def test_a_forward_kafka_refuses_for_good_is_dead_lettered_and_then_without_its_bytes() -> None:
    record = FakeRecord(event(), headers=(("big", b"x" * 10),))
    dead = refused_forward(record, ValueError("too large"))
    assert (dead.topic, dead.value, dead.reason) == (
        topics.EVENTS_DLQ,
        record.value,
        "forward_refused",
    )
    assert dict(dead.headers)["error"] == b"care.events.v1 refused the record (ValueError)"
    bare = bare_dead_letter(dead, record, ValueError("too large"))
    assert (bare.value, bare.reason, bare.key) == (b"", "forward_refused", record.key)
    assert [name for name, _ in bare.headers] == list(OURS)
    assert dict(bare.headers)["source-offset"] == b"41"


# --- agency topic names ------------------------------------------------------------------------


def test_agency_input_topics_match_the_gates_subscription() -> None:
    import re

    assert topics.agency_input("county-a") == "care.events.in.county-a"
    assert topics.agency_of_input("care.events.in.county-a") == "county-a"
    assert re.match(topics.AGENCY_INPUT_PATTERN, topics.agency_input("x" * 64))
    assert not re.match(topics.AGENCY_INPUT_PATTERN, "care.events.in.county-a.extra")
    for bad in ("a", "A-b", "a_b", "a" * 65, "a.b", ""):
        with pytest.raises(ValueError, match="an agency id is 2 to 64 of a-z, 0-9 and '-'"):
            topics.agency_input(bad)


# --- the ACLs of a grant -----------------------------------------------------------------------


def test_an_agency_may_write_and_describe_its_own_topic_only() -> None:
    acls = grants.agency_acls("county-a", "User:agency-county-a")
    assert {(a.operation, a.resource_pattern.resource_type) for a in acls} == {
        (ACLOperation.WRITE, ResourceType.TOPIC),
        (ACLOperation.DESCRIBE, ResourceType.TOPIC),
    }
    for acl in acls:
        assert acl.principal == "User:agency-county-a"
        assert acl.resource_pattern.resource_name == "care.events.in.county-a"
        # LITERAL: a prefix would also grant care.events.in.county-a-north
        assert acl.resource_pattern.pattern_type == ACLResourcePatternType.LITERAL


@pytest.mark.parametrize(
    ("agency", "principal", "message"),
    [
        ("a", "User:agency-a", "an agency id is 2 to 64 of a-z, 0-9 and '-'"),
        (
            "carealert-canary",
            "User:x",
            "the canary agency is reserved: it posts through ingest only",
        ),
        ("county-a", "agency-a", "a principal is written User:<name>"),
        ("county-a", "User:*", "a principal is written User:<name>"),
        ("county-a", "User:", "a principal is written User:<name>"),
    ],
)
def test_a_grant_that_cannot_be_made_is_refused(agency: str, principal: str, message: str) -> None:
    with pytest.raises(grants.GrantRefused, match=message.replace("*", r"\*")):
        grants.agency_acls(agency, principal)


def test_the_gate_reads_every_input_topic_and_writes_events_and_dead_letters() -> None:
    acls = grants.gate_acls("User:gate")
    got = {
        (
            a.operation.name,
            a.resource_pattern.resource_type.name,
            a.resource_pattern.resource_name,
            a.resource_pattern.pattern_type.name,
        )
        for a in acls
    }
    assert got == {
        ("READ", "TOPIC", "care.events.in.", "PREFIXED"),
        ("DESCRIBE", "TOPIC", "care.events.in.", "PREFIXED"),
        ("READ", "GROUP", "carealert-gate", "LITERAL"),
        ("WRITE", "TOPIC", "care.events.v1", "LITERAL"),
        ("DESCRIBE", "TOPIC", "care.events.v1", "LITERAL"),
        ("WRITE", "TOPIC", "care.events.dlq", "LITERAL"),
        ("DESCRIBE", "TOPIC", "care.events.dlq", "LITERAL"),
    }


# --- the loop's writes, against an in-memory producer ------------------------------------------


class MemoryProducer:
    """Acknowledges every send, except the refusals queued for a value (one per send)."""

    def __init__(self, refusals: dict[bytes, list[BaseException]] | None = None) -> None:
        self.refusals = refusals or {}
        self.written: list[tuple[str, bytes | None, bytes, int | None, list[Any]]] = []

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        partition: int | None,
        timestamp_ms: int | None,
        headers: list[Any],
    ) -> asyncio.Future[None]:
        assert timestamp_ms is None  # Kafka stamps the forwarded record when the gate writes it
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self.refusals.get(value) or []
        if queued:
            ack.set_exception(queued.pop(0))
        else:
            self.written.append((topic, key, value, partition, headers))
            ack.set_result(None)
        return ack


def gate_with(producer: MemoryProducer) -> Gate:
    return Gate(
        None, producer, GateMetrics(CollectorRegistry()), Held("gate"), partitions=6, batch_max=10
    )


def planned(*records: FakeRecord) -> list[tuple[Any, Write]]:
    return [(r, plan(r, 6)) for r in records]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.gate.worker.retry_delay_s", lambda _attempt: 0.0)


@pytest.mark.asyncio
async def test_a_batch_is_written_in_offset_order_and_counted() -> None:
    producer = MemoryProducer()
    gate = gate_with(producer)
    good, bad = FakeRecord(event(), offset=1), FakeRecord(b"nope", offset=2)
    await gate.write_wholly(planned(good, bad))
    assert [(t, v) for t, _, v, _, _ in producer.written] == [
        (topics.EVENTS, good.value),
        (topics.EVENTS_DLQ, b"nope"),
    ]
    registry = gate.metrics.registry
    assert registry.get_sample_value("carealert_gate_forwarded_total") == 1
    assert (
        registry.get_sample_value("carealert_gate_dlq_writes_total", {"reason": "undecodable"}) == 1
    )
    assert (
        registry.get_sample_value("carealert_gate_dlq_writes_total", {"reason": "agency_mismatch"})
        == 0
    )


@pytest.mark.asyncio
async def test_a_passing_refusal_writes_again_only_what_was_not_acknowledged() -> None:
    first, second = event(child_id="C-1"), event(child_id="C-2")
    producer = MemoryProducer({second: [KafkaTimeoutError(), NotLeaderForPartitionError()]})
    gate = gate_with(producer)
    await gate.write_wholly(planned(FakeRecord(first), FakeRecord(second)))
    assert [v for _, _, v, _, _ in producer.written] == [first, second]
    assert gate.metrics.registry.get_sample_value("carealert_gate_batch_retries_total") == 2
    assert gate.metrics.registry.get_sample_value("carealert_gate_forwarded_total") == 2
    assert not gate.retrying


@pytest.mark.asyncio
async def test_a_record_events_refuses_for_good_is_dead_lettered_then_bare_if_need_be() -> None:
    big = event(child_id="C-big")
    producer = MemoryProducer({big: [MessageSizeTooLargeError(), MessageSizeTooLargeError()]})
    gate = gate_with(producer)
    await gate.write_wholly(planned(FakeRecord(big)))
    [(topic, _, value, _, headers)] = producer.written
    assert (topic, value) == (topics.EVENTS_DLQ, b"")
    assert dict(headers)["error"].startswith(b"care.events.dlq refused the record")
    assert (
        gate.metrics.registry.get_sample_value(
            "carealert_gate_dlq_writes_total", {"reason": "forward_refused"}
        )
        == 1
    )


@pytest.mark.asyncio
async def test_a_refusal_that_is_not_the_records_fault_stops_the_loop() -> None:
    value = event()
    producer = MemoryProducer({value: [TopicAuthorizationFailedError()]})
    with pytest.raises(TopicAuthorizationFailedError):
        await gate_with(producer).write_wholly(planned(FakeRecord(value)))
    assert producer.written == []
