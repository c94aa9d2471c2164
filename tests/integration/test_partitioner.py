"""An agency producing straight to Kafka with a librdkafka client (confluent-kafka: CRC32 key
partitioner, not Java's murmur2) puts a child's records on other partitions than ingest does.
Two rules workers share the partitions; every duty is still resolved by its report, because each
misplaced record is forwarded to the partition its key belongs on."""

from __future__ import annotations

import binascii
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer

from services.common import topics
from services.common.partitioning import partition_for
from tests.integration.services import produce, rules_service
from tests.support import (
    Service,
    make_event,
    missing_opened,
    read_topic,
    wait_for_records,
    wait_until,
)

PARTITIONS = 6  # tests/conftest.py's broker creates the topics with six


@pytest.fixture(scope="module")
def workers(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Service]]:
    app_id = f"rules-crc-{uuid.uuid4().hex[:6]}"
    services = [
        rules_service(bootstrap, log_dir, app_id, tmp_path_factory.mktemp(f"w{i}"))
        for i in range(2)
    ]
    for svc in services:
        svc.start()
    yield services
    for svc in services:
        svc.stop()


def librdkafka_produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for event in events:
        key = f"{event['agency_id']}:{event['child_id']}".encode()
        producer.produce(topics.EVENTS, key=key, value=json.dumps(event).encode())
    assert producer.flush(30) == 0


def ncmec_reported(child: str) -> dict[str, Any]:
    return make_event(
        "missing.ncmec_reported", {"episode_id": "E-1", "ncmec_case_number": "N-1"}, child_id=child
    )


def test_every_duty_is_discharged_whatever_partitioner_the_producer_used(
    workers: list[Service], bootstrap: str, producer: KafkaProducer
) -> None:
    children = [f"C-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    keys = [f"demo-agency:{c}".encode() for c in children]
    crc32 = [binascii.crc32(k) % PARTITIONS for k in keys]  # librdkafka's consistent_random
    assert sum(c != partition_for(k, PARTITIONS) for c, k in zip(crc32, keys, strict=True)) >= 3
    ingest_opened, all_librdkafka = children[:6], children[6:]
    for child in ingest_opened:  # opened through ingest's partitioner, reported by librdkafka
        produce(producer, missing_opened(child_id=child))
    librdkafka_produce(bootstrap, [missing_opened(child_id=c) for c in all_librdkafka])
    librdkafka_produce(bootstrap, [ncmec_reported(c) for c in children])

    def every_ncmec_duty_discharged() -> bool:
        """For every child, once its missing.opened was evaluated (its law-enforcement duty
        fired): its NCMEC duty fired and was resolved, or never fired (a report evaluated
        before the opening, having come through another partition, discharges it first)."""
        statuses: dict[tuple[str, str], list[str]] = {}
        for r in read_topic(bootstrap, topics.ESCALATIONS):
            e = r.json()
            if e.get("child_id") in children:
                statuses.setdefault((e["child_id"], e["rule_id"]), []).append(e["status"])
        for child in children:
            ncmec = statuses.get((child, "federal.report-ncmec"), [])
            assert ncmec.count("firing") <= 1, "one state per child, not one per partition"
            opened = (child, "federal.report-law-enforcement") in statuses
            if not opened or ncmec.count("firing") > ncmec.count("resolved"):
                return False
        return True

    wait_until(every_ncmec_duty_discharged, 90, "every NCMEC duty discharged")
    forwarded = 0.0
    for svc in workers:
        text = httpx.get(f"{svc.url}/metrics", timeout=5).text
        found = re.search(r"^carealert_rules_events_rekeyed_total (\S+)$", text, re.M)
        forwarded += float(found.group(1)) if found else 0.0
    assert forwarded >= 3


def test_a_forwarded_record_that_is_invalid_is_dead_lettered_where_its_producer_wrote_it(
    workers: list[Service], bootstrap: str
) -> None:
    while True:  # a child whose CRC32 partition is not its murmur2 partition
        child = f"C-{uuid.uuid4().hex[:8]}"
        key = f"demo-agency:{child}".encode()
        if binascii.crc32(key) % PARTITIONS != partition_for(key, PARTITIONS):
            break
    invalid = make_event("missing.opened", {"episode_id": "E-1"}, child_id=child)
    delivered: list[Any] = []
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topics.EVENTS,
        key=key,
        value=json.dumps(invalid).encode(),
        headers=[("x-agency-batch", b"b-9")],
        on_delivery=lambda _err, msg: delivered.append(msg),
    )
    assert producer.flush(30) == 0
    [msg] = delivered
    [dead] = wait_for_records(bootstrap, topics.EVENTS_DLQ, lambda r: r.key == key)
    assert dead.headers["source-topic"] == topics.EVENTS.encode()  # so `dlq replay` can use it
    assert dead.headers["source-partition"] == str(msg.partition()).encode()
    assert dead.headers["source-offset"] == str(msg.offset()).encode()
    assert dead.headers["x-agency-batch"] == b"b-9"
    assert "rekeyed-from-partition" not in dead.headers
