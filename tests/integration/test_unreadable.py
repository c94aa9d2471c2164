"""A record a worker cannot read (here: a snappy batch, with the worker told by its test hook to
behave as if snappy were not installed) holds its partition: the worker stays up, turns unready,
reports the held partition and is not restarted by the stall watch, while its other partitions
flow; nothing is skipped, so a worker that can read it (the codec installed) picks it up."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from services.common import topics
from services.common.partitioning import partition_for
from tests.integration.notify_support import (
    make_escalation,
    publish,
    skip_existing_records,
    start_stack,
)
from tests.integration.test_rules_worker import escalations_for, produce, rules_service
from tests.integration.test_stall import STALL_ENV, stalled_gauge
from tests.support import Service, missing_opened, read_topic, wait_until

PARTITIONS = 6
NO_SNAPPY = {"CAREALERT_TEST_DISABLED_CODECS": "snappy", **STALL_ENV}


def child_on(partition: int | None = None, avoid: int | None = None) -> str:
    """A child id whose key lands on `partition` (or anywhere but `avoid`)."""
    while True:
        child = f"C-{uuid.uuid4().hex[:8]}"
        p = partition_for(f"demo-agency:{child}".encode(), PARTITIONS)
        if (partition is None or p == partition) and p != avoid:
            return child


def snappy_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=[bootstrap], compression_type="snappy")


def padded(event: dict[str, Any]) -> dict[str, Any]:
    """Long enough that the producer really compresses it."""
    clothing = "blue raincoat and grey boots " * 40
    event["payload"]["description"] = {"name": "Jane Doe", "clothing": clothing.strip()}
    return event


def held_for_good(service: Service, gauge: str) -> None:
    """Unready and counted; still alive after more than the stall timeout."""
    wait_until(lambda: stalled_gauge(service, gauge) == 1, 60, f"{gauge} at 1")
    ready = httpx.get(f"{service.url}/readyz", timeout=5)
    assert ready.status_code == 503 and "cannot read" in ready.text
    time.sleep(float(STALL_ENV["CAREALERT_STALL_TIMEOUT_S"]) + 4)
    assert service.proc is not None and service.proc.poll() is None
    assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200
    assert stalled_gauge(service, gauge) == 1


def test_rules_holds_the_partition_it_cannot_read_and_the_others_flow(
    bootstrap: str, log_dir: Path, producer: KafkaProducer, tmp_path: Path
) -> None:
    app_id = f"rules-held-{uuid.uuid4().hex[:6]}"
    # Earlier modules left snappy records on every partition: start this group at the end.
    skip_existing_records(bootstrap, app_id, topics.EVENTS)
    worker = rules_service(bootstrap, log_dir, app_id, tmp_path / "a", **NO_SNAPPY)
    worker.start()
    try:
        unreadable = missing_opened(child_id=child_on(2))
        compressed = snappy_producer(bootstrap)
        key = f"demo-agency:{unreadable['child_id']}".encode()
        compressed.send(topics.EVENTS, key=key, value=json.dumps(padded(unreadable)).encode())
        compressed.close()
        others = [missing_opened(child_id=child_on(avoid=2)) for _ in range(3)]
        for event in others:
            produce(producer, event)
        for event in others:
            escalations_for(bootstrap, event["child_id"], 3)
        held_for_good(worker, "carealert_rules_unreadable_partitions")
        assert not [
            r
            for r in read_topic(bootstrap, topics.ESCALATIONS)
            if r.json().get("child_id") == unreadable["child_id"]
        ]
        log = worker.log_text()
        assert "partition held" in log and "raincoat" not in log  # where, never what
    finally:
        worker.stop()
    # Installed the codec (no hook): the same group reads on from where it was held.
    fixed = rules_service(bootstrap, log_dir, app_id, tmp_path / "b")
    fixed.start()
    try:
        escalations_for(bootstrap, unreadable["child_id"], 3)
    finally:
        fixed.stop()


def test_notify_holds_the_partition_it_cannot_read_and_the_others_flow(
    bootstrap: str, log_dir: Path, producer: KafkaProducer, tmp_path: Path
) -> None:
    stack = start_stack(
        bootstrap,
        log_dir,
        tmp_path,
        CAREALERT_TEST_DISABLED_CODECS="snappy",
        CAREALERT_STALL_TIMEOUT_S=STALL_ENV["CAREALERT_STALL_TIMEOUT_S"],
        CAREALERT_STALL_CHECK_INTERVAL_S=STALL_ENV["CAREALERT_STALL_CHECK_INTERVAL_S"],
    )
    try:
        unreadable = make_escalation(
            child_id=child_on(4), subject={"name": "Jane Doe", "clothing": "red hoodie " * 80}
        )
        compressed = snappy_producer(bootstrap)
        compressed.send(
            topics.ESCALATIONS, key=unreadable.key.encode(), value=unreadable.to_bytes()
        )
        compressed.close()
        readable = make_escalation(child_id=child_on(avoid=4))
        publish(producer, readable)
        wait_until(
            lambda: bool(stack.mails_to("alex@agency.example", readable.escalation_id)), 30, "mail"
        )
        held_for_good(stack.service, "carealert_notify_unreadable_partitions")
        assert stack.mails_to("alex@agency.example", unreadable.escalation_id) == []
    finally:
        stack.stop()
