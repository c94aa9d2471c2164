"""Records compressed by a client that is not ours (Kafka's own console producer, from the jars
deploy/kafka fetches) with each codec, and records the broker compresses because the topic says
so: rules and notify read them all."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from services.common import topics
from tests.integration.notify_support import (
    NotifyStack,
    skip_existing_records,
)
from tests.integration.services import (
    STALL_ENV,
    escalations_for,
    produce,
    rules_service,
    stalled_gauge,
)
from tests.support import ROOT, Service, make_escalation, missing_opened, read_topic, wait_until

CODECS = ("gzip", "lz4", "snappy", "zstd")
LIBS = ROOT / "deploy" / "kafka" / ".cache" / "libs"


def console_produce(
    bootstrap: str, topic: str, records: list[tuple[str, str]], codec: str, log_dir: Path
) -> None:
    """Kafka's ConsoleProducer (Java), `key|value` lines on standard input."""
    lines = "".join(f"{k}|{v}\n" for k, v in records)
    subprocess.run(
        [
            "java",
            "-cp",
            f"{LIBS}/*",
            f"-Dlog4j2.configurationFile={ROOT / 'deploy' / 'kafka' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={log_dir}",
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--compression-codec",
            codec,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=|",
        ],
        input=lines,
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def rules(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    # A short stall timeout: a transaction's trailing marker must never look like a stall.
    # The group starts at the end of the topic, so no catching up on other modules' history
    # counts against it.
    app_id = f"rules-codec-{uuid.uuid4().hex[:6]}"
    skip_existing_records(bootstrap, app_id, topics.EVENTS)
    svc = rules_service(bootstrap, log_dir, app_id, tmp_path_factory.mktemp("r"), **STALL_ENV)
    svc.start()
    yield svc
    svc.stop()


def event_record(event: dict[str, Any]) -> tuple[str, str]:
    return f"{event['agency_id']}:{event['child_id']}", json.dumps(event)


@pytest.mark.parametrize("codec", CODECS)
def test_rules_evaluates_records_compressed_by_a_foreign_producer(
    rules: Service, bootstrap: str, log_dir: Path, codec: str
) -> None:
    events = [missing_opened() for _ in range(3)]
    console_produce(bootstrap, topics.EVENTS, [event_record(e) for e in events], codec, log_dir)
    for event in events:
        escalations_for(bootstrap, event["child_id"], 3)
    assert rules.proc is not None and rules.proc.poll() is None


def test_rules_reads_a_topic_the_broker_compresses(
    rules: Service, bootstrap: str, producer: KafkaProducer
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])

    def compression(kind: str) -> None:
        config = {"compression.type": kind}
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.EVENTS, configs=config)]
        )

    try:
        compression("zstd")
        event = missing_opened()
        produce(producer, event)
        escalations_for(bootstrap, event["child_id"], 3)
    finally:
        compression("producer")
        admin.close()


@pytest.mark.parametrize("codec", CODECS)
def test_notify_delivers_escalations_compressed_by_a_foreign_producer(
    stack: NotifyStack, bootstrap: str, log_dir: Path, codec: str
) -> None:
    esc = make_escalation()
    record = (esc.key, esc.to_bytes().decode())
    console_produce(bootstrap, topics.ESCALATIONS, [record], codec, log_dir)
    wait_until(lambda: bool(stack.mails_to("alex@agency.example", esc.escalation_id)), 30, "mail")


def test_notify_ignores_what_a_transactional_producer_aborted(
    stack: NotifyStack, bootstrap: str
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], transactional_id=f"agency-tx-{uuid.uuid4().hex[:6]}"
    )
    try:
        producer.init_transactions()
        aborted, committed = make_escalation(), make_escalation()
        producer.begin_transaction()
        producer.send(topics.ESCALATIONS, key=aborted.key.encode(), value=aborted.to_bytes())
        producer.flush()
        producer.abort_transaction()
        producer.begin_transaction()
        producer.send(topics.ESCALATIONS, key=committed.key.encode(), value=committed.to_bytes())
        producer.commit_transaction()
    finally:
        producer.close()
    wait_until(
        lambda: bool(stack.mails_to("alex@agency.example", committed.escalation_id)), 30, "mail"
    )
    assert stack.mails_to("alex@agency.example", aborted.escalation_id) == []


def transactional_producer(bootstrap: str) -> KafkaProducer:
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], transactional_id=f"agency-tx-{uuid.uuid4().hex[:6]}"
    )
    producer.init_transactions()
    return producer


def test_rules_ignores_what_a_transactional_producer_aborted(
    rules: Service, bootstrap: str
) -> None:
    aborted, committed = missing_opened(), missing_opened()
    producer = transactional_producer(bootstrap)
    try:
        for event, commit in ((aborted, False), (committed, True)):
            key, value = event_record(event)
            producer.begin_transaction()
            producer.send(topics.EVENTS, key=key.encode(), value=value.encode())
            producer.flush()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()
    escalations_for(bootstrap, committed["child_id"], 3)
    # The committed transaction left its marker after the last record the worker commits
    # past: with a 4 s stall timeout, a probe that counted it would restart the worker.
    time.sleep(8)
    assert rules.proc is not None and rules.proc.poll() is None
    assert stalled_gauge(rules, "carealert_rules_stalled_partitions") == 0
    mine = [r for r in read_topic(bootstrap, topics.ESCALATIONS) if r.json().get("child_id")]
    assert [r for r in mine if r.json()["child_id"] == aborted["child_id"]] == []
