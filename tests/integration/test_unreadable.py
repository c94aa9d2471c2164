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
from services.common.escalations import Escalation
from services.common.partitioning import partition_for
from services.common.unreadable import MARK
from tests.integration.notify_support import (
    publish,
    skip_existing_records,
    start_stack,
)
from tests.integration.services import (
    STALL_ENV,
    escalations_fired_by,
    escalations_for,
    produce,
    rules_service,
    stalled_gauge,
)
from tests.support import (
    Record,
    Service,
    make_escalation,
    missing_opened,
    read_topic,
    wait_for_records,
    wait_until,
)

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


class NotUtf8(str):
    """A header name kafka-python writes as bytes that are not UTF-8 (the broker accepts them;
    a librdkafka producer can send the same)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:  # noqa: ARG002
        return b"\xff\xfe-name"


def send_malformed(producer: KafkaProducer, topic: str, key: bytes, value: bytes) -> int:
    sent = producer.send(topic, key=key, value=value, headers=[(NotUtf8("x"), b"1")])
    return int(sent.get(timeout=10).offset)


def undecodable_dead_letter(bootstrap: str, dlq: str, partition: int, offset: int) -> Record:
    """The dead letter standing in for the record at (partition, offset)."""
    [dead] = wait_for_records(
        bootstrap,
        dlq,
        lambda r: (
            r.headers.get("source-partition") == str(partition).encode()
            and r.headers.get("source-offset") == str(offset).encode()
        ),
    )
    assert dead.headers["error"].startswith(b"record could not be decoded")
    return dead


def test_rules_dead_letters_a_record_it_cannot_decode_and_reads_on(
    bootstrap: str, log_dir: Path, producer: KafkaProducer, tmp_path: Path
) -> None:
    app_id = f"rules-bad-{uuid.uuid4().hex[:6]}"
    skip_existing_records(bootstrap, app_id, topics.EVENTS)
    before, bad, after = (missing_opened(child_id=child_on(1)) for _ in range(3))
    elsewhere = missing_opened(child_id=child_on(avoid=1))
    for event in (elsewhere, before):  # waiting in the same fetch as the bad record
        produce(producer, event)
    key = f"demo-agency:{bad['child_id']}".encode()
    offset = send_malformed(producer, topics.EVENTS, key, json.dumps(bad).encode())
    produce(producer, after)
    worker = rules_service(bootstrap, log_dir, app_id, tmp_path / "w", **STALL_ENV)
    worker.start()
    try:
        for event in (elsewhere, before, after):
            escalations_for(bootstrap, event["child_id"], 3)
        dead = undecodable_dead_letter(bootstrap, topics.EVENTS_DLQ, 1, offset)
        assert dead.value == b"" and MARK not in dead.headers
        time.sleep(2)  # anything evaluated twice would have been written by now
        for event in (elsewhere, before, after):
            mine = [
                r.json()
                for r in read_topic(bootstrap, topics.ESCALATIONS)
                if r.json().get("child_id") == event["child_id"]
            ]
            assert len(mine) == escalations_fired_by(event), "each event evaluated exactly once"
        assert stalled_gauge(worker, "carealert_rules_unreadable_partitions") == 0
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()


def test_notify_dead_letters_a_record_it_cannot_decode_and_reads_on(
    bootstrap: str, log_dir: Path, producer: KafkaProducer, tmp_path: Path
) -> None:
    stack = start_stack(bootstrap, log_dir, tmp_path)
    try:
        before, bad, after = (make_escalation(child_id=child_on(3)) for _ in range(3))
        publish(producer, before)
        offset = send_malformed(producer, topics.ESCALATIONS, bad.key.encode(), bad.to_bytes())
        publish(producer, after)

        def mailed(esc: Escalation) -> bool:
            return bool(stack.mails_to("alex@agency.example", esc.escalation_id))

        wait_until(lambda: mailed(before) and mailed(after), 30, "mail for both")
        undecodable_dead_letter(bootstrap, topics.ESCALATIONS_DLQ, 3, offset)
        assert stack.mails_to("alex@agency.example", bad.escalation_id) == []
        assert len(stack.mails_to("alex@agency.example", before.escalation_id)) == 1
    finally:
        stack.stop()
