"""The rules worker's batches with an in-memory producer and table: nothing one record holds
stops the worker (docs/contract.md, "Bounded events"). An event too large to evaluate, a dead
letter too large to keep its bytes, outputs too large to write, and records Kafka refuses for
their size all end as dead letters (a tick: counted, and tried again); the batch completes and the
next event is evaluated. No state written records an input whose escalations Kafka refused."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import TopicPartition
from faust.exceptions import ProducerSendError
from prometheus_client import CollectorRegistry

from services.common import topics
from services.common.canary import CANARY_AGENCY
from services.common.dlq import MAX_BARE_KEY_BYTES, MAX_RECORD_BYTES, OURS, record_size
from services.common.partitioning import partition_for
from services.rules import records, statecodec
from services.rules import state as state_module
from services.rules.core import Engine
from services.rules.deadlines import DeadlineIndex
from services.rules.metrics import RulesMetrics
from services.rules.records import Rejected, dlq_record, too_large_to_write
from services.rules.state import ChildState
from services.rules.worker import RulesWorker
from tests.support import missing_opened

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
PARTITIONS = 6
REKEYED = "rules-test-rekeyed"


@dataclass
class Message:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int = 0
    topic: str = topics.EVENTS
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: float = NOW.timestamp()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass
class Ev:
    message: Message


class Producer:
    """faust's producer.send; `refuse(topic, key, value)` returns an error to refuse a record
    with (`at_once`: raised by send as faust does, else on the ack)."""

    def __init__(self, refuse: Any = None, at_once: bool = False) -> None:
        self.refuse = refuse or (lambda *_: None)
        self.at_once = at_once
        self.written: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error = self.refuse(topic, key, value)
        if error is not None and self.at_once:
            raise ProducerSendError(f"Error while sending: {error!r}") from error
        if error is not None:
            ack.set_exception(error)
        else:
            self.written.append((topic, key, value, list(headers or [])))
            ack.set_result(None)
        return ack

    async def flush(self) -> None:
        pass

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [(k, v, dict(h)) for t, k, v, h in self.written if t == topic]


class Consumer:
    def highwater(self, _tp: Any) -> int:
        raise KeyError("unknown before a fetch")


class App:
    should_stop = False

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.consumer = Consumer()


def worker_with(engine: Engine, producer: Producer) -> tuple[RulesWorker, dict[bytes, bytes]]:
    table: dict[bytes, bytes] = {}
    worker = RulesWorker(
        App(producer),  # type: ignore[arg-type]  # the parts of a RulesApp the worker uses
        engine,
        RulesMetrics(CollectorRegistry()),
        table,  # type: ignore[arg-type]  # a faust table reads and writes like a dict here
        DeadlineIndex(),
        partitions=PARTITIONS,
        ticks_topic="rules-test-ticks",
        rekeyed_topic=REKEYED,
        clock=lambda: NOW,
    )
    return worker, table


def record(event: dict[str, Any], offset: int = 0) -> Ev:
    key = f"{event['agency_id']}:{event['child_id']}".encode()
    value = json.dumps(event).encode()
    return Ev(Message(key, value, partition_for(key, PARTITIONS), offset))


def opened(child: str, **kw: Any) -> dict[str, Any]:
    return missing_opened(child_id=child, at=NOW - timedelta(minutes=5), **kw)


def huge_aliases(child: str) -> dict[str, Any]:
    """The security test's event: 3,960 aliases of 250 characters, about 1 MB."""
    description = {"name": "A", "aliases": ["A" * 250] * 3960}
    return opened(child, description=description)


def dlq_count(worker: RulesWorker, reason: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "carealert_rules_dlq_writes_total", {"reason": reason}
    )
    return value or 0.0


def escalated(producer: Producer, child: str) -> list[dict[str, Any]]:
    return [
        json.loads(v or b"")
        for _, v, _ in producer.on(topics.ESCALATIONS)
        if json.loads(v or b"")["child_id"] == child
    ]


@pytest.mark.asyncio
async def test_a_1mb_event_is_dead_lettered_bare_and_the_next_event_is_evaluated(
    engine: Engine,
) -> None:
    producer = Producer()
    worker, table = worker_with(engine, producer)
    big = record(huge_aliases("C-big"), offset=7)
    assert len(big.message.value or b"") > MAX_RECORD_BYTES
    await worker.process([big, record(opened("C-next"), offset=8)])

    [(key, value, headers)] = producer.on(topics.EVENTS_DLQ)
    assert (key, value) == (big.message.key, b"")
    assert list(headers) == list(OURS)
    error = headers["error"].decode()
    assert error.startswith("the record is too large for care.events.dlq (")
    assert "dead-lettered as invalid_event: payload.description.aliases: " in error
    assert error.endswith("its bytes are only on its source topic")
    assert (headers["source-topic"], headers["source-offset"]) == (b"care.events.v1", b"7")
    assert dlq_count(worker, "too_large") == 1
    assert len(escalated(producer, "C-next")) >= 3
    assert list(table) == [b"demo-agency:C-next"]


@pytest.mark.asyncio
@pytest.mark.parametrize("at_once", [True, False])
async def test_a_dead_letter_kafka_refuses_as_too_large_is_written_bare(
    engine: Engine, at_once: bool
) -> None:
    refused: list[bytes] = []

    def refuse(topic: str, _key: bytes | None, value: bytes | None) -> Exception | None:
        if topic == topics.EVENTS_DLQ and value and value not in refused:
            refused.append(value)
            error: Exception = RecordTooLargeError()  # a topic whose max.message.bytes is lower
            return error
        return None

    producer = Producer(refuse, at_once=at_once)
    worker, _ = worker_with(engine, producer)
    garbage = Ev(Message(b"demo-agency:C-1", b"not json", partition_for(b"demo-agency:C-1", 6)))
    await worker.process([garbage, record(opened("C-next"))])

    [(key, value, headers)] = producer.on(topics.EVENTS_DLQ)
    assert (key, value) == (b"demo-agency:C-1", b"")
    assert headers["error"].startswith(b"care.events.dlq refused the record (RecordTooLargeError)")
    assert b"dead-lettered as undecodable: " in headers["error"]
    assert dlq_count(worker, "too_large") == 1
    assert dlq_count(worker, "undecodable") == 0
    assert len(escalated(producer, "C-next")) >= 3


def refusing(child: bytes, rule: bytes = b"alert.missing-child") -> Any:
    """A refusal (as a topic whose max.message.bytes is low) of `child`'s escalations of `rule`
    (an overdue step too: its rule id starts so), while `refusing.on` is true."""

    def refuse(topic: str, _key: bytes | None, value: bytes | None) -> Exception | None:
        if refuse.on and topic == topics.ESCALATIONS:  # type: ignore[attr-defined]  # a flag
            if b'"rule_id":"' + rule in (value or b"") and child in (value or b""):
                error: Exception = MessageSizeTooLargeError()
                return error
        return None

    refuse.on = True  # type: ignore[attr-defined]
    return refuse


def too_large_inputs(worker: RulesWorker, kind: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "carealert_rules_inputs_too_large_total", {"input": kind}
    )
    return value or 0.0


@pytest.mark.asyncio
@pytest.mark.parametrize("at_once", [True, False])
async def test_an_event_whose_escalation_kafka_refuses_is_dead_lettered_and_not_applied(
    engine: Engine, at_once: bool
) -> None:
    """Its state is not written (the batch is evaluated again without it), so its dead letter
    is applied when replayed once the topic takes the escalation; the other child's event is
    applied, and what Kafka took in the first pass is not sent again."""
    refuse = refusing(b"C-refused")
    producer = Producer(refuse, at_once=at_once)
    worker, table = worker_with(engine, producer)
    event = record(opened("C-refused"))
    await worker.process([event, record(opened("C-next"), offset=1)])

    [(key, value, headers)] = producer.on(topics.EVENTS_DLQ)
    assert (key, value) == (event.message.key, event.message.value)  # small: the full copy
    assert headers["error"] == (
        b"care.escalations.v1 refused an escalation of this event as too large"
        b" (MessageSizeTooLargeError); the event was not applied"
    )
    assert dlq_count(worker, "too_large") == 1
    assert too_large_inputs(worker, "event") == 1
    assert list(table) == [b"demo-agency:C-next"]
    sent_next = [e["escalation_id"] for e in escalated(producer, "C-next")]
    assert len(sent_next) >= 3 and len(set(sent_next)) == len(sent_next)  # each sent once

    refuse.on = False  # the topic fixed: `carealert dlq replay` puts the event back
    await worker.process([record(json.loads(value or b""), offset=2)])
    assert "alert.missing-child" in {e["rule_id"] for e in escalated(producer, "C-refused")}
    assert b"demo-agency:C-refused" in table
    assert worker.metrics.registry.get_sample_value("carealert_rules_events_duplicate_total") == 0


@pytest.mark.asyncio
async def test_a_tick_whose_escalation_kafka_refuses_is_counted_and_tried_again(
    engine: Engine,
) -> None:
    """The overdue step is not lost: the tick is not applied (the state still owes the step),
    counted, and the next tick sends it once Kafka takes it."""
    refuse = refusing(b"C-1", b"federal.report-law-enforcement")
    producer = Producer(refuse)
    worker, table = worker_with(engine, producer)
    refuse.on = False
    await worker.process([record(opened("C-1"))])
    before = table[b"demo-agency:C-1"]
    key = b"demo-agency:C-1"
    tick = Ev(Message(key, b"tick", partition_for(key, PARTITIONS), 1, topic="rules-test-ticks"))
    worker.clock = lambda: NOW + timedelta(days=2)
    refuse.on = True
    await worker.process([tick])

    assert table[key] == before
    assert too_large_inputs(worker, "tick") == 1
    assert producer.on(topics.EVENTS_DLQ) == []
    overdue = "federal.report-law-enforcement.overdue"
    assert overdue not in {e["rule_id"] for e in escalated(producer, "C-1")}

    refuse.on = False
    await worker.process([tick])
    assert overdue in {e["rule_id"] for e in escalated(producer, "C-1")}
    assert table[key] != before


@pytest.mark.asyncio
async def test_a_canarys_escalation_kafka_refuses_is_counted(engine: Engine) -> None:
    producer = Producer(refusing(b"canary-1", b"federal.report-ncmec"))
    worker, table = worker_with(engine, producer)
    await worker.process([record({**opened("canary-1"), "agency_id": CANARY_AGENCY})])
    assert too_large_inputs(worker, "canary") == 1
    assert producer.on(topics.EVENTS_DLQ) == [] and table == {}


@pytest.mark.asyncio
async def test_duties_a_state_drops_to_stay_bounded_are_counted(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "MAX_OPEN", 1)  # a missing.opened opens more live duties
    producer = Producer()
    worker, table = worker_with(engine, producer)
    await worker.process([record(opened("C-1"))])
    state = ChildState.from_bytes(table[b"demo-agency:C-1"])
    assert len(state.open) == 1 and state.forgotten > 0
    forgotten = worker.metrics.registry.get_sample_value("carealert_rules_duties_forgotten_total")
    assert forgotten == state.forgotten


@pytest.mark.asyncio
async def test_an_event_whose_state_would_be_too_large_is_dead_lettered_not_applied(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child's state grows with its history (episodes keep their descriptions): an event
    that would make it larger than Kafka takes is dead-lettered, and the state stays as it
    was, instead of a write that stops the worker."""
    # Stored as plain JSON here: compressed, this repetitive description would make the state
    # smaller than the escalations that carry it, and it is the state's size under test.
    monkeypatch.setattr(statecodec, "encode", lambda plain: plain)
    long = opened("C-1", description={"name": "A", "physical_description": "d" * 4000})
    event = record(long)
    _, out = engine.evaluate(None, json_event(long), NOW)
    state_size = state_record_size(engine, long)
    biggest_escalation = max(record_size(e.key.encode(), e.to_bytes(), []) for e in out)
    copy = record_size(event.message.key, event.message.value, [("error", b"x" * 200)] * 5)
    assert max(biggest_escalation, copy) < state_size - 1
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", state_size - 1)

    producer = Producer()
    worker, table = worker_with(engine, producer)
    await worker.process([event, record(opened("C-2"), offset=1)])

    [(key, value, headers)] = producer.on(topics.EVENTS_DLQ)
    assert (key, value) == (event.message.key, event.message.value)
    assert headers["error"].startswith(b"the child's state would be too large (")
    assert escalated(producer, "C-1") == []
    assert list(table) == [b"demo-agency:C-2"]
    assert dlq_count(worker, "too_large") == 1


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The children whose state the worker encodes, one entry each time."""
    seen: list[str] = []
    stored = ChildState.stored

    def counting(state: ChildState) -> tuple[bytes, int]:
        seen.append(state.child_id)
        return stored(state)

    monkeypatch.setattr(ChildState, "stored", counting)
    return seen


@pytest.mark.asyncio
async def test_of_a_childs_inputs_in_one_batch_the_one_that_makes_its_state_too_large_goes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, encoded: list[str]
) -> None:
    """A child's state is encoded once a batch, after its last input; when that state is too
    large (here: its JSON more than a reader decompresses, however small it compresses), the
    inputs are sized one by one: the earlier input is applied, the later one that made the
    state too large is dead-lettered, and the child's state is the one after the earlier."""
    first = opened("C-1")
    second = opened(
        "C-1", episode_id="E-2", description={"name": "A", "physical_description": "d" * 4000}
    )
    after_first, _ = engine.evaluate(None, json_event(first), NOW)
    assert after_first is not None
    after_first.partition = partition_for(b"demo-agency:C-1", PARTITIONS)
    after_both, _ = engine.evaluate(after_first, json_event(second), NOW)
    assert after_both is not None
    json_size = len(after_both.to_bytes())
    assert len(statecodec.encode(after_both.to_bytes())) < json_size // 2  # Kafka takes it
    monkeypatch.setattr(statecodec, "MAX_DECODED_BYTES", json_size - 1)

    producer = Producer()
    worker, table = worker_with(engine, producer)
    late = record(second, offset=1)
    await worker.process([record(first), late, record(opened("C-2"), offset=2)])

    [(key, value, headers)] = producer.on(topics.EVENTS_DLQ)
    assert (key, value) == (late.message.key, late.message.value)
    assert headers["error"].startswith(b"the child's state would be too large to read back (")
    assert ChildState.from_bytes(table[b"demo-agency:C-1"]) == after_first
    # Each child once in the first pass; then C-1 after each of its two inputs, C-2 once more.
    assert sorted(encoded) == ["C-1", "C-1", "C-1", "C-2", "C-2"]


@pytest.mark.asyncio
async def test_a_childs_state_is_encoded_once_a_batch(engine: Engine, encoded: list[str]) -> None:
    producer = Producer()
    worker, table = worker_with(engine, producer)
    batch = [record(opened("C-1", episode_id=f"E-{n}"), offset=n) for n in range(1, 5)]
    await worker.process(batch)
    assert encoded == ["C-1"]
    assert len(ChildState.from_bytes(table[b"demo-agency:C-1"]).episodes) == 4


@pytest.mark.asyncio
async def test_a_misplaced_record_too_large_to_forward_is_dead_lettered(engine: Engine) -> None:
    producer = Producer()
    worker, _ = worker_with(engine, producer)
    key = b"demo-agency:C-1"
    elsewhere = (partition_for(key, PARTITIONS) + 1) % PARTITIONS
    big = Ev(Message(key, b"x" * MAX_RECORD_BYTES, elsewhere, 3))
    await worker.process([big])
    assert producer.on(REKEYED) == []
    [(_, value, headers)] = producer.on(topics.EVENTS_DLQ)
    assert value == b""
    assert b"dead-lettered as too_large: the record is too large to forward" in headers["error"]
    assert dlq_count(worker, "too_large") == 1


# --- the pure parts ------------------------------------------------------------------------------


def json_event(obj: dict[str, Any]) -> Any:
    from services.common.events import parse_event_obj

    return parse_event_obj(obj, now=NOW)


def state_record_size(engine: Engine, obj: dict[str, Any]) -> int:
    state, _ = engine.evaluate(None, json_event(obj), NOW)
    assert state is not None
    state.partition = 0
    return record_size(b"demo-agency:" + obj["child_id"].encode(), state.to_bytes(), [])


def test_a_dead_letter_that_fits_keeps_the_record_and_its_own_headers() -> None:
    message = Message(b"k", b"v", 0, 5, headers=[("traceparent", b"t")])
    key, value, headers, code = dlq_record(message, Rejected("invalid_event", "x: y"), REKEYED)
    assert (key, value, code) == (b"k", b"v", "invalid_event")
    assert [name for name, _ in headers] == ["traceparent", *OURS]


def test_a_dead_letter_too_large_drops_the_value_own_headers_and_a_long_key() -> None:
    key = b"k" * (MAX_BARE_KEY_BYTES + 1)
    message = Message(key, b"v" * MAX_RECORD_BYTES, 0, 5, headers=[("traceparent", b"t")])
    k, value, headers, code = dlq_record(message, Rejected("invalid_event", "x: y"), REKEYED)
    assert (k, value, code) == (None, b"", "too_large")
    assert [name for name, _ in headers] == list(OURS)
    assert record_size(k, value, headers) < 2000


def test_outputs_within_the_limit_pass_and_over_it_are_named() -> None:
    assert too_large_to_write(b"k", b"s" * 1000, [(b"k", b"e" * 1000, [])]) is None
    state = too_large_to_write(b"k", b"s" * MAX_RECORD_BYTES, [])
    assert state is not None and state.code == "too_large"
    assert state.reason.startswith("the child's state would be too large (")
    escalation = too_large_to_write(b"k", None, [(b"k", b"e" * MAX_RECORD_BYTES, [])])
    assert escalation is not None
    assert escalation.reason.startswith("an escalation would be too large (")


def test_the_faust_producer_refuses_what_the_worker_measures_as_too_large() -> None:
    """The worker's measure is the producer's own: the rules app sets faust's
    producer_max_request_size to MAX_RECORD_BYTES."""
    from services.rules.app import faust_app
    from services.rules.settings import RulesSettings

    app = faust_app(RulesSettings(rules_store="memory://"), PARTITIONS)
    assert app.conf.producer_max_request_size == MAX_RECORD_BYTES


@pytest.mark.asyncio
async def test_a_state_the_worker_wrote_is_not_decoded_again_until_the_table_changes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = Producer()
    worker, table = worker_with(engine, producer)
    await worker.process([record(opened("C-1"))])
    key = b"demo-agency:C-1"
    written = table[key]
    decoded: list[bytes] = []
    real = ChildState.from_bytes

    def counting(raw: bytes) -> ChildState:
        decoded.append(raw)
        return real(raw)

    monkeypatch.setattr(ChildState, "from_bytes", counting)
    await worker.process([record(opened("C-1", episode_id="E-2"), offset=1)])
    assert decoded == [] and table[key] != written
    # The table changed under the worker (restored from the changelog): decoded again.
    table[key] = written
    await worker.process([record(opened("C-1", episode_id="E-3"), offset=2)])
    assert decoded == [written]
