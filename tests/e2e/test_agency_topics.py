"""Direct producers are tenants too (docs/agency-topics.md): on a broker with ACLs (SASL_SSL,
KRaft's StandardAuthorizer, SCRAM users for two agencies, a third granted later, and the gate),
each agency's principal may write its own input topic only, and the gate forwards what an
agency writes there to care.events.v1 only when the record is that agency's.

One broker and one gate (a real `python -m services.gate.main` process, as the gate's own
principal with only the ACLs `services.gate.grants` gives it) for the module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from services.common import topics
from services.common.kafka import KafkaClient, ensure_topics, wait_for_kafka
from services.common.partitioning import partition_for
from services.gate import grants
from tests.support import ROOT, Broker, certificate_authority, free_port, make_event, wait_until

ADMIN = "carealert-admin"  # the broker's own user: the only super user
GATE = "gate"
PASSWORD = "scram-password-made-for-this-test-only"
AGENCIES = ("county-a", "county-b", "county-c")  # county-c is granted while the gate runs
PARTITIONS = 3


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Path]]:
    certs = tmp_path_factory.mktemp("certs")
    ca, keystore = certificate_authority(certs)
    users = [f"agency-{a}:{PASSWORD}" for a in AGENCIES] + [f"{GATE}:{PASSWORD}"]
    broker = Broker(
        env={
            "KAFKA_LISTENER_PROTOCOL": "SASL_SSL",
            "KAFKA_SSL_KEYSTORE_PEM": str(keystore),
            "KAFKA_SSL_TRUSTSTORE_PEM": str(ca),
            "KAFKA_SASL_USERNAME": ADMIN,
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_AUTHORIZER": "on",
            "KAFKA_SASL_EXTRA_USERS": ",".join(users),
        }
    )
    broker.start()
    try:
        yield broker, ca
    finally:
        broker.destroy()


def as_user(acl_broker: tuple[Broker, Path], user: str) -> KafkaClient:
    broker, ca = acl_broker
    return KafkaClient(
        (broker.bootstrap,), "SASL_SSL", "SCRAM-SHA-512", user, SecretStr(PASSWORD), ca
    )


def agency(acl_broker: tuple[Broker, Path], agency_id: str) -> KafkaProducer:
    """The agency's own producer, as an agency system would run it."""
    client = as_user(acl_broker, f"agency-{agency_id}")
    return KafkaProducer(**client.kafka_python(acks="all", max_block_ms=10_000))


class GateProcess:
    """`python -m services.gate.main` as the gate's principal, its log in a file."""

    def __init__(self, acl_broker: tuple[Broker, Path], log_dir: Path) -> None:
        broker, ca = acl_broker
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"gate-{self.port}.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME": GATE,
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_SSL_CAFILE": str(ca),
            "CAREALERT_GATE_PORT": str(self.port),
            "CAREALERT_GATE_TOPIC_REFRESH_S": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.gate.main"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        wait_until(self.ready, 60, f"the gate's /readyz ({self.log_path})")

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the gate exited: {self.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = rf"^{name}{{{wanted}}} (\S+)$" if labels else rf"^{name} (\S+)$"
        found = re.search(pattern, httpx.get(f"{self.url}/metrics").text, re.M)
        return float(found.group(1)) if found else 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(timeout=30) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()


@pytest.fixture(scope="module")
def gate(acl_broker: tuple[Broker, Path], log_dir: Path) -> Iterator[GateProcess]:
    """The contract's topics (as ingest and rules create them), county-a and county-b granted,
    and the gate running with exactly the gate's ACLs."""
    admin = as_user(acl_broker, ADMIN)
    wait_for_kafka(admin, client_id="test", timeout_s=60)
    ensure_topics(admin, partitions=PARTITIONS, replication=1)
    for agency_id in AGENCIES[:2]:
        grants.grant_agency(
            admin, agency_id, grants.default_principal(agency_id), partitions=2, replication=1
        )
    grants.grant_gate(admin, f"User:{GATE}")
    process = GateProcess(acl_broker, log_dir)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def records(acl_broker: tuple[Broker, Path], topic: str) -> list[Any]:
    """Every record on `topic` now, read as the administrator."""
    consumer = KafkaConsumer(
        **as_user(acl_broker, ADMIN).kafka_python(
            enable_auto_commit=False, isolation_level="read_committed"
        )
    )
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 15
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def wait_for(acl_broker: tuple[Broker, Path], topic: str, value: bytes) -> Any:
    """The record on `topic` whose value is `value`, once it is there."""
    found: list[Any] = []

    def there() -> bool:
        found[:] = [r for r in records(acl_broker, topic) if r.value == value]
        return bool(found)

    wait_until(there, 45, f"the record on {topic}")
    assert len(found) == 1
    return found[0]


def event_of(agency_id: str, child: str) -> bytes:
    event = make_event("missing.opened", {"episode_id": "E-1"}, agency_id=agency_id, child_id=child)
    return json.dumps(event).encode()


def test_an_agency_may_write_its_own_input_topic_only(
    acl_broker: tuple[Broker, Path], gate: GateProcess
) -> None:
    producer = agency(acl_broker, "county-a")
    try:
        sent = producer.send(topics.agency_input("county-a"), b"{}").get(timeout=15)
        assert sent.topic == "care.events.in.county-a"
        for refused in (topics.agency_input("county-b"), topics.EVENTS, topics.EVENTS_DLQ):
            with pytest.raises(TopicAuthorizationFailedError):
                producer.send(refused, event_of("county-a", "C-1")).get(timeout=15)
    finally:
        producer.close(timeout=5)


def test_another_agencys_event_is_dead_lettered_and_the_partition_flows_on(
    acl_broker: tuple[Broker, Path], gate: GateProcess
) -> None:
    child = f"C-{uuid.uuid4().hex[:8]}"
    foreign = event_of("county-b", child)  # county-a claiming county-b's child
    garbage = b"\x00\xff not an event " + uuid.uuid4().hex.encode()
    good = event_of("county-a", child)
    trace = [("traceparent", b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-01")]
    dlq_before = gate.metric("carealert_gate_dlq_writes_total", reason="agency_mismatch")
    producer = agency(acl_broker, "county-a")
    try:
        source = topics.agency_input("county-a")
        at = [
            producer.send(source, value, key=b"their-own-key", partition=0, headers=trace).get(
                timeout=15
            )
            for value in (foreign, garbage, good)
        ]
    finally:
        producer.close(timeout=5)
    assert [m.partition for m in at] == [0, 0, 0]

    dead = wait_for(acl_broker, topics.EVENTS_DLQ, foreign)
    assert dead.key == b"their-own-key"
    assert dead.headers == [
        *trace,
        ("error", b"agency_id is not the agency of the topic"),
        ("source-topic", source.encode()),
        ("source-partition", b"0"),
        ("source-offset", str(at[0].offset).encode()),
    ]
    undecodable = wait_for(acl_broker, topics.EVENTS_DLQ, garbage)
    assert dict(undecodable.headers)["error"] == b"not UTF-8 JSON"
    assert dict(undecodable.headers)["source-offset"] == str(at[1].offset).encode()

    forwarded = wait_for(acl_broker, topics.EVENTS, good)
    key = f"county-a:{child}".encode()
    assert forwarded.key == key
    assert forwarded.partition == partition_for(key, PARTITIONS)
    assert forwarded.headers == trace
    assert not [r for r in records(acl_broker, topics.EVENTS) if r.value == foreign]
    assert (
        gate.metric("carealert_gate_dlq_writes_total", reason="agency_mismatch") >= dlq_before + 1
    )
    assert gate.metric("carealert_gate_dlq_writes_total", reason="undecodable") >= 1
    assert gate.metric("carealert_gate_forwarded_total") >= 1


def test_an_agency_granted_while_the_gate_runs_is_picked_up(
    acl_broker: tuple[Broker, Path], gate: GateProcess
) -> None:
    source = topics.agency_input("county-c")
    before = agency(acl_broker, "county-c")
    try:
        with pytest.raises(TopicAuthorizationFailedError):  # not granted yet
            before.send(source, b"{}").get(timeout=15)
    finally:
        before.close(timeout=5)
    admin = as_user(acl_broker, ADMIN)
    granted = grants.grant_agency(
        admin, "county-c", grants.default_principal("county-c"), partitions=2, replication=1
    )
    assert granted.topic == source
    child = f"C-{uuid.uuid4().hex[:8]}"
    good = event_of("county-c", child)
    producer = agency(acl_broker, "county-c")
    try:
        producer.send(source, good).get(timeout=15)
    finally:
        producer.close(timeout=5)
    forwarded = wait_for(acl_broker, topics.EVENTS, good)
    assert forwarded.key == f"county-c:{child}".encode()
