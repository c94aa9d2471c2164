"""The rules worker on the real broker: `carealert rules` in a subprocess, events produced to
care.events.v1, escalations and dead letters read back from their topics."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics, tracing
from services.common.dlq import TOMBSTONE_REASON
from tests.integration.services import escalations_for, produce, rules_service
from tests.support import (
    Record,
    Service,
    make_event,
    missing_opened,
    wait_for_records,
    wait_until,
)


@pytest.fixture(scope="module")
def rules(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    svc = rules_service(
        bootstrap, log_dir, f"rules-it-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("rules")
    )
    svc.start()
    yield svc
    svc.stop()


def test_missing_child_produces_the_federal_escalations(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    produce(
        producer,
        make_event(
            "child.registered",
            {"date_of_birth": "2011-05-01", "sex": "female"},
            child_id=child,
            occurred_at=now,
        ),
    )
    produce(producer, missing_opened(child_id=child, at=now))
    records = escalations_for(bootstrap, child, 3)
    by_rule = {r.json().get("rule_id"): r for r in records}
    assert {"federal.report-law-enforcement", "federal.report-ncmec", "alert.missing-child"} <= set(
        by_rule
    )
    ncmec = by_rule["federal.report-ncmec"]
    assert ncmec.key == f"demo-agency:{child}".encode()
    body = ncmec.json()
    assert body["status"] == "firing"
    assert body["jurisdiction"]["state"] == "MO"
    # Missouri overlay: 2 hours from when the agency learned of it.
    assert datetime.fromisoformat(body["due_at"]) == now.replace(
        microsecond=now.microsecond
    ) + timedelta(hours=2)
    assert body["evidence"]["age"] == 15
    assert len(body["escalation_id"]) == 32


def test_deadline_passing_emits_overdue_from_the_timer(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    # Learned of 2 h minus 4 s ago in Missouri: the report is due in 4 seconds.
    learned = datetime.now(UTC) - timedelta(hours=2) + timedelta(seconds=4)
    produce(producer, missing_opened(child_id=child, at=learned))
    escalations_for(bootstrap, child, 3)
    overdue = wait_for_records(
        bootstrap,
        topics.ESCALATIONS,
        lambda r: (
            r.json().get("child_id") == child
            and r.json().get("rule_id") == "federal.report-ncmec.overdue"
        ),
        timeout=60,
    )
    assert overdue[0].json()["severity"] == "critical"
    assert "director" in overdue[0].json()["recipients"]


def test_resolving_event_resolves(rules: Service, bootstrap: str, producer: KafkaProducer) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    produce(producer, missing_opened(child_id=child, at=now))
    escalations_for(bootstrap, child, 3)
    produce(
        producer,
        make_event(
            "missing.ncmec_reported",
            {"episode_id": "E-1", "ncmec_case_number": "N-1"},
            child_id=child,
        ),
    )
    resolved = wait_for_records(
        bootstrap,
        topics.ESCALATIONS,
        lambda r: r.json().get("child_id") == child and r.json()["status"] == "resolved",
    )
    assert resolved[0].json()["rule_id"] == "federal.report-ncmec"


def test_garbage_goes_to_the_dlq_and_the_partition_keeps_flowing(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    key = f"demo-agency:{child}".encode()
    garbage = b"\xff\xfe not json at all"
    invalid = make_event("missing.opened", {"episode_id": "E-1"}, child_id=child)  # fields missing
    producer.send(topics.EVENTS, key=key, value=garbage).get(timeout=10)
    produce(producer, invalid)
    wrong_key = missing_opened(child_id=child)
    producer.send(
        topics.EVENTS,
        key=b"demo-agency:someone-else",
        value=__import__("json").dumps(wrong_key).encode(),
    ).get(timeout=10)
    produce(producer, missing_opened(child_id=child))  # same key, after the garbage
    escalations_for(bootstrap, child, 3)

    dead = wait_for_records(
        bootstrap,
        topics.EVENTS_DLQ,
        lambda r: (
            r.key in (key, b"demo-agency:someone-else")
            and (child.encode() in r.value or r.value == garbage)
        ),
        3,
    )
    by_value = {r.value: r for r in dead}
    g = by_value[garbage]
    assert g.headers["error"] == b"(root): body is not UTF-8"
    assert g.headers["source-topic"] == topics.EVENTS.encode()
    assert int(g.headers["source-offset"]) >= 0
    assert g.headers["source-partition"].isdigit()
    inv = next(r for r in dead if r.key == key and r.value != garbage)
    assert inv.headers["error"].startswith(b"payload.last_seen_at: Field required")
    assert b"Jane" not in inv.headers["error"]
    wk = next(r for r in dead if r.key == b"demo-agency:someone-else")
    assert b"message key" in wk.headers["error"]
    metrics = httpx.get(f"{rules.url}/metrics").text
    assert 'carealert_rules_dlq_writes_total{reason="undecodable"}' in metrics


def test_health_and_metrics(rules: Service) -> None:
    assert httpx.get(f"{rules.url}/healthz").text == "ok"
    wait_until(lambda: httpx.get(f"{rules.url}/readyz").status_code == 200, 30, "readyz")
    metrics = httpx.get(f"{rules.url}/metrics").text
    assert "carealert_rules_events_processed_total" in metrics


def test_the_worker_serves_only_metrics_and_health_and_only_on_its_host(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    produce(
        producer,
        make_event(
            "child.registered",
            {"date_of_birth": "2011-03-04", "sex": "female"},
            child_id=child,
        ),
    )
    produce(
        producer,
        missing_opened(child_id=child, description={"name": "Zelda Quintanilla"}),
    )
    escalations_for(bootstrap, child, 1)
    for path in (
        "/",
        "/table/",
        "/table/child-state/",
        f"/table/child-state/demo-agency:{child}/",
        "/router/",
        "/graph/",
        "/stats/",
        "/assignment/",
        "/openapi.json",
        "/metrics/../table/",
    ):
        r = httpx.get(f"{rules.url}{path}", timeout=5)
        assert r.status_code == 404, path
        assert "Zelda" not in r.text and "2011-03-04" not in r.text and child not in r.text
    assert httpx.get(f"{rules.url}/metrics", timeout=5).status_code == 200
    assert httpx.get(f"{rules.url}/healthz", timeout=5).text == "ok"
    # CAREALERT_RULES_HOST is 127.0.0.1: another loopback address is not served.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.2:{rules.port}/metrics", timeout=5)


def dead_letters_for(bootstrap: str, key: bytes, count: int) -> list[Record]:
    return wait_for_records(bootstrap, topics.EVENTS_DLQ, lambda r: r.key == key, count, 60)


def test_hostile_records_on_kafka_meet_the_same_rules_as_at_ingest(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    import json

    child = f"C-{uuid.uuid4().hex[:8]}"
    key = f"demo-agency:{child}".encode()
    opened = missing_opened(child_id=child)
    produce(producer, opened)
    escalations_for(bootstrap, child, 3)
    # The same event_id with other content must not vanish; an identical resend is harmless.
    changed = {**opened, "payload": {**opened["payload"], "circumstances": "abducted"}}
    produce(producer, opened)
    produce(producer, changed)
    ancient = missing_opened(child_id=child, episode_id="E-2")
    ancient["occurred_at"] = "0001-01-01T00:00:00Z"
    produce(producer, ancient)
    injected = missing_opened(child_id=child, episode_id="E-3\r\nBcc: x@evil.example")
    produce(producer, injected)
    deep = b"[" * 10_000 + b"]" * 10_000
    producer.send(topics.EVENTS, key=key, value=deep).get(timeout=10)
    dead = dead_letters_for(bootstrap, key, 4)
    assert [r.headers["error"].decode() for r in dead] == [
        "event_id was applied before with different content",
        "occurred_at: must not be before 1900",
        "payload.episode_id: must contain only printable characters (no control, bidi or zero-width)",
        "(root): JSON nested deeper than 32 levels",
    ]
    assert json.loads(dead[0].value) == changed
    assert dead[3].value == deep
    # The partition keeps flowing.
    later = missing_opened(child_id=child, episode_id="E-4")
    produce(producer, later)
    assert len(escalations_for(bootstrap, child, 6)) >= 6
    metrics = httpx.get(f"{rules.url}/metrics", timeout=5).text
    counted = re.search(
        r'^carealert_rules_dlq_writes_total\{reason="conflicting_duplicate"\} (\S+)$', metrics, re.M
    )
    assert counted and float(counted.group(1)) >= 1


TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_dead_letters_keep_the_record_headers_and_tombstones_say_so(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    key = f"demo-agency:{child}".encode()
    theirs = [("x-agency-batch", b"b-17"), (tracing.HEADER, TRACE.encode()), ("error", b"theirs")]
    producer.send(topics.EVENTS, key=key, value=b"{not json", headers=theirs).get(timeout=10)
    producer.send(topics.EVENTS, key=key, value=None, headers=theirs).get(timeout=10)
    dead = wait_for_records(bootstrap, topics.EVENTS_DLQ, lambda r: r.key == key, 2)
    by_error = {r.headers["error"]: r for r in dead}
    tombstone = by_error[TOMBSTONE_REASON.encode()]
    assert tombstone.value == b""
    garbage = next(r for r in dead if r is not tombstone)
    assert garbage.value == b"{not json"
    for record in (garbage, tombstone):
        assert record.headers["x-agency-batch"] == b"b-17"
        assert record.headers[tracing.HEADER] == TRACE.encode()
        assert record.headers["original-error"] == b"theirs"
        assert record.headers["source-topic"] == topics.EVENTS.encode()
    metrics = httpx.get(f"{rules.url}/metrics").text
    assert 'carealert_rules_dlq_writes_total{reason="tombstone"}' in metrics


def test_escalations_carry_the_trace_of_their_event(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    import json

    traced, untraced = missing_opened(), missing_opened()
    for event, headers in ((traced, [(tracing.HEADER, TRACE.encode())]), (untraced, [])):
        key = f"{event['agency_id']}:{event['child_id']}".encode()
        producer.send(topics.EVENTS, key=key, value=json.dumps(event).encode(), headers=headers)
    producer.flush()
    spans = set()
    records = escalations_for(bootstrap, traced["child_id"], 3)
    for esc in records:
        header = esc.headers[tracing.HEADER].decode()
        assert header.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and header.endswith("-01")
        spans.add(header.split("-")[2])
    # a span of its own each (Missouri's overlay adds party notices to the federal duties)
    assert len(spans) == len(records) >= 3 and "00f067aa0ba902b7" not in spans
    assert all(
        tracing.HEADER not in e.headers for e in escalations_for(bootstrap, untraced["child_id"], 3)
    )
