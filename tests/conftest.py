"""Shared fixtures. The broker is real: started from the Kafka jars on free loopback ports,
unless KAFKA_BOOTSTRAP_SERVERS names one that is already running. `pipeline` is the whole
stack (ingest, rules, notify with its sinks), started once per module that asks for it."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from tests.integration.notify_support import NotifyStack, start_stack
from tests.integration.services import ingest_service, rules_service
from tests.support import Service, kafka_bootstrap, temp_dir, wait_until


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    with kafka_bootstrap() as servers:
        yield servers


@pytest.fixture(scope="session")
def log_dir() -> Iterator[Path]:
    """Service logs. Set CAREALERT_TEST_LOGS=DIR to keep them."""
    keep = os.environ.get("CAREALERT_TEST_LOGS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with temp_dir() as d:
        yield d


@pytest.fixture(scope="module")
def producer(bootstrap: str) -> Iterator[KafkaProducer]:
    """A plain producer for tests that write straight to Kafka."""
    p = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    yield p
    p.close()


def _processed(rules: Service) -> float:
    text = httpx.get(f"{rules.url}/metrics").text
    return sum(
        float(v)
        for v in re.findall(r"^carealert_rules_events_processed_total\{[^}]*\} (\S+)$", text, re.M)
    )


def start_pipeline(
    bootstrap: str, log_dir: Path, tmp: Path, *, ack: str = "7s", canary_every_s: str = ""
) -> tuple[Service, Service, NotifyStack]:
    """ingest → rules → notify on the test broker; notify starts once rules has worked
    through what earlier modules left, so it sees only this module's traffic. Reminders every
    hour, escalation after `ack` without an acknowledgement; the proof-of-life canary every
    `canary_every_s` seconds if given."""
    ingest = ingest_service(bootstrap, log_dir)
    rules = rules_service(
        bootstrap, log_dir, f"rules-pipeline-{uuid.uuid4().hex[:6]}", tmp / "rules"
    )
    ingest.start()
    rules.start()
    # Let the new rules group work through what earlier tests left on care.events.v1, so that
    # notify (which starts at the end of care.escalations.v1) sees only this module's traffic.
    wait_until(
        lambda: httpx.get(f"{rules.url}/readyz").status_code == 200,
        60,
        "rules to get its partitions",
    )
    last = -1.0
    for _ in range(120):
        now = _processed(rules)
        if now == last:
            break
        last = now
        time.sleep(1.5)
    canary: dict[str, Any] = {}
    if canary_every_s:
        canary = {
            "CAREALERT_CANARY_INGEST_URL": ingest.url,
            "CAREALERT_CANARY_API_KEY": "demo-canary-not-a-secret",
            "CAREALERT_CANARY_INTERVAL_S": canary_every_s,
            "CAREALERT_ENV": "demo",  # the canary key is the demo one (tests/fixtures/api-keys.yaml)
        }
    notify = start_stack(bootstrap, log_dir, tmp, repeat="1h", ack=ack, **canary)
    return ingest, rules, notify


@pytest.fixture(scope="module")
def pipeline(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, Service, NotifyStack]]:
    """The whole stack with fast escalation (ack timeout 7 s) and the proof-of-life canary
    every 2 s."""
    tmp = tmp_path_factory.mktemp("pipeline")
    ingest, rules, notify = start_pipeline(bootstrap, log_dir, tmp, canary_every_s="2")
    yield ingest, rules, notify
    notify.stop()
    rules.stop()
    ingest.stop()
