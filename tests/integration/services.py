"""The ingest and rules services for tests: `carealert ingest` and `carealert rules` configured
for a test broker (not started: the caller starts and stops them), and the helpers that write
what they consume and read what they produce. Shared by the fixtures in tests/conftest.py and
tests/integration/conftest.py, the integration and e2e modules, and bench/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from services.common import topics
from tests.support import ROOT, Record, Service, free_port, read_topic, wait_for_records

KEYS_FILE = ROOT / "tests" / "fixtures" / "api-keys.yaml"
AUTH = {"Authorization": "Bearer demo-not-a-secret"}
"""The demo agency's key from KEYS_FILE, as ingest expects it."""

STALL_ENV = {
    "CAREALERT_STALL_TIMEOUT_S": "4",
    "CAREALERT_STALL_CHECK_INTERVAL_S": "0.5",
    "CAREALERT_STALL_EXIT_GRACE_S": "6",
}
"""A stall watch that notices in seconds, for the tests that stall a worker on purpose."""


def ingest_service(
    bootstrap: str, log_dir: Path, tls: tuple[Path, Path] | None = None, **env: str
) -> Service:
    port = free_port()
    if tls is not None:
        env = {"CAREALERT_TLS_CERTFILE": str(tls[0]), "CAREALERT_TLS_KEYFILE": str(tls[1]), **env}
    return Service(
        ["ingest"],
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CAREALERT_INGEST_PORT": str(port),
            "CAREALERT_API_KEYS_FILE": str(KEYS_FILE),
            "CAREALERT_ENV": "demo",  # the keys file is make run's, with the public demo keys
            **env,
        },
        port,
        log_dir,
        tls_ca=tls[0] if tls else None,
    )


def rules_service(
    bootstrap: str, log_dir: Path, app_id: str, data_dir: Path, **extra_env: str
) -> Service:
    port = free_port()
    return Service(
        ["rules"],
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CAREALERT_RULES_PORT": str(port),
            "CAREALERT_RULES_APP_ID": app_id,
            "CAREALERT_RULES_DATA_DIR": str(data_dir),
            "CAREALERT_POLICY_DIR": str(ROOT / "rules"),
            "CAREALERT_TICK_INTERVAL_S": "0.5",
            **extra_env,
        },
        port,
        log_dir,
    )


def events_with_ids(bootstrap: str, ids: set[str]) -> list[Any]:
    """Records with these event ids (other tests leave garbage on the topic: skip it)."""
    out = []
    for r in read_topic(bootstrap, topics.EVENTS):
        try:
            event_id = r.json().get("event_id")
        except (ValueError, AttributeError, RecursionError):
            continue
        if event_id in ids:
            out.append(r)
    return out


def produce(producer: KafkaProducer, event: dict[str, Any]) -> None:
    key = f"{event['agency_id']}:{event['child_id']}".encode()
    producer.send(topics.EVENTS, key=key, value=json.dumps(event).encode()).get(timeout=10)


def escalations_fired_by(event: dict[str, Any]) -> int:
    """How many escalations the shipped policy fires for `event` alone (a state's overlay adds
    duties to the federal ones), as the engine computes them offline."""
    from datetime import UTC, datetime

    from services.common.events import parse_event_obj
    from services.rules.core import Engine
    from services.rules.policy import load_policy

    now = datetime.now(UTC)
    _, out = Engine(load_policy(ROOT / "rules")).evaluate(
        None, parse_event_obj(event, now=now), now
    )
    return len(out)


def escalations_for(bootstrap: str, child_id: str, count: int, timeout: float = 60) -> list[Record]:
    return wait_for_records(
        bootstrap,
        topics.ESCALATIONS,
        lambda r: r.json().get("child_id") == child_id,
        count,
        timeout,
    )


def stalled_gauge(service: Service, name: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=2).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} is not exported"
    return float(match.group(1))
