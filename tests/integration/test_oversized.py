"""One agency's oversized event must not stop alerting for all (docs/contract.md, "Bounded
events"), on the real broker: the security test's 1 MB `missing.opened` written straight to
care.events.v1 is dead-lettered (without its bytes, which Kafka would refuse in a dead letter),
the rules worker stays up and evaluates the next event; posted to ingest, it is a 422."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics
from services.common.dlq import OURS
from tests.integration.services import AUTH, escalations_for, produce, rules_service
from tests.support import Service, missing_opened, wait_for_records


@pytest.fixture(scope="module")
def rules(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    svc = rules_service(
        bootstrap, log_dir, f"rules-big-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("big")
    )
    svc.start()
    yield svc
    svc.stop()


def huge_missing_opened(child: str) -> dict[str, Any]:
    """3,960 aliases of 250 characters: a body of about 1 MB, which ingest used to accept."""
    return missing_opened(child_id=child, description={"name": "A", "aliases": ["A" * 250] * 3960})


def dlq_writes(rules: Service, reason: str) -> float:
    text = httpx.get(f"{rules.url}/metrics", timeout=2).text
    found = re.search(
        rf'^carealert_rules_dlq_writes_total\{{reason="{reason}"\}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_a_1mb_event_is_dead_lettered_and_the_next_one_alerts(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    big, other = f"C-big-{uuid.uuid4().hex[:8]}", f"C-{uuid.uuid4().hex[:8]}"
    event = huge_missing_opened(big)
    assert len(json.dumps(event)) > 1_000_000
    produce(producer, event)
    produce(producer, missing_opened(child_id=other))

    escalations_for(bootstrap, other, 3)  # the next event (another child) is evaluated
    [dead] = wait_for_records(
        bootstrap, topics.EVENTS_DLQ, lambda r: r.key == f"demo-agency:{big}".encode()
    )
    assert dead.value == b""
    assert set(dead.headers) == set(OURS)
    error = dead.headers["error"].decode()
    assert error.startswith("the record is too large for care.events.dlq (")
    assert "invalid_event: payload.description.aliases: " in error
    assert dead.headers["source-topic"] == topics.EVENTS.encode()
    assert dlq_writes(rules, "too_large") >= 1
    assert rules.proc is not None and rules.proc.poll() is None  # never exited
    assert "batch not completed" not in rules.log_text()


def test_posting_it_to_ingest_is_a_422_naming_the_field(ingest: Service) -> None:
    event = huge_missing_opened(f"C-big-{uuid.uuid4().hex[:8]}")
    r = httpx.post(f"{ingest.url}/v1/events", json=event, headers=AUTH, timeout=30)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert (error["field"], error["type"]) == ("payload.description.aliases", "too_long")
    assert "AAAA" not in r.text
