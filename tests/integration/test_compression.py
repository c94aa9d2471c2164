"""Records compressed by a client that is not ours (Kafka's own console producer, from the jars
deploy/kafka fetches) with each codec, and records the broker compresses because the topic says
so: rules and notify read them all."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from services.common import topics
from tests.integration.notify_support import NotifyStack, make_escalation
from tests.integration.test_rules_worker import escalations_for, produce, rules_service
from tests.support import ROOT, Service, missing_opened, wait_until

CODECS = ("gzip", "lz4", "snappy", "zstd")
LIBS = ROOT / "deploy" / "kafka" / ".cache" / "libs"


def console_produce(bootstrap: str, topic: str, records: list[tuple[str, str]], codec: str) -> None:
    """Kafka's ConsoleProducer (Java), `key|value` lines on standard input."""
    lines = "".join(f"{k}|{v}\n" for k, v in records)
    subprocess.run(
        [
            "java",
            "-cp",
            f"{LIBS}/*",
            f"-Dlog4j2.configurationFile={ROOT / 'deploy' / 'kafka' / 'log4j2.properties'}",
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
    svc = rules_service(
        bootstrap, log_dir, f"rules-codec-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("r")
    )
    svc.start()
    yield svc
    svc.stop()


def event_record(event: dict[str, Any]) -> tuple[str, str]:
    return f"{event['agency_id']}:{event['child_id']}", json.dumps(event)


@pytest.mark.parametrize("codec", CODECS)
def test_rules_evaluates_records_compressed_by_a_foreign_producer(
    rules: Service, bootstrap: str, codec: str
) -> None:
    events = [missing_opened() for _ in range(3)]
    console_produce(bootstrap, topics.EVENTS, [event_record(e) for e in events], codec)
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
    stack: NotifyStack, bootstrap: str, codec: str
) -> None:
    esc = make_escalation()
    console_produce(bootstrap, topics.ESCALATIONS, [(esc.key, esc.to_bytes().decode())], codec)
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
