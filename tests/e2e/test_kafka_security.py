"""The whole pipeline over a SASL_SSL listener: the local broker with TLS (a CA and certificate
made here) and SCRAM users added when its storage is formatted; ingest, rules and notify
authenticate (rules with SCRAM-SHA-512, the others with SCRAM-SHA-256) and an event posted to
ingest reaches the caseworker's inbox. A client without credentials, or with a wrong password,
is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from services.common.kafka import KafkaClient, KafkaUnavailable, wait_for_kafka
from tests.integration.notify_support import CASEWORKER, start_stack
from tests.integration.services import AUTH, ingest_service, rules_service
from tests.support import Broker, certificate_authority, missing_opened, registered, wait_until

USER = "carealert-svc"
PASSWORD = "scram-password-made-for-this-test-only"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Path]]:
    certs = tmp_path_factory.mktemp("certs")
    ca, keystore = certificate_authority(certs)
    broker = Broker(
        env={
            "KAFKA_LISTENER_PROTOCOL": "SASL_SSL",
            "KAFKA_SSL_KEYSTORE_PEM": str(keystore),
            "KAFKA_SSL_TRUSTSTORE_PEM": str(ca),
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
    )
    broker.start()
    yield broker, ca
    broker.destroy()


def client_env(ca: Path, mechanism: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "KAFKA_SSL_CAFILE": str(ca),
    }


def test_clients_without_credentials_are_refused(secure_broker: tuple[Broker, Path]) -> None:
    broker, ca = secure_broker
    good = KafkaClient(
        (broker.bootstrap,), "SASL_SSL", "SCRAM-SHA-256", USER, SecretStr(PASSWORD), ca
    )
    wait_for_kafka(good, client_id="test", timeout_s=30)
    for refused in (
        KafkaClient.plaintext([broker.bootstrap]),
        KafkaClient((broker.bootstrap,), "SSL", cafile=ca),
        KafkaClient(
            (broker.bootstrap,), "SASL_SSL", "SCRAM-SHA-256", USER, SecretStr("wrong-one"), ca
        ),
    ):
        with pytest.raises(KafkaUnavailable):
            wait_for_kafka(refused, client_id="test", timeout_s=5)


def test_an_event_flows_ingest_rules_notify_over_sasl_ssl(
    secure_broker: tuple[Broker, Path], log_dir: Path, tmp_path: Path
) -> None:
    broker, ca = secure_broker
    ingest = ingest_service(broker.bootstrap, log_dir, None, **client_env(ca, "SCRAM-SHA-256"))
    rules = rules_service(
        broker.bootstrap,
        log_dir,
        f"rules-sasl-{uuid.uuid4().hex[:6]}",
        tmp_path / "rules",
        **client_env(ca, "SCRAM-SHA-512"),
    )
    notify = None
    try:
        ingest.start()
        rules.start()
        notify = start_stack(
            broker.bootstrap,
            log_dir,
            tmp_path,
            fresh_broker=True,
            KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
            KAFKA_SASL_USERNAME=USER,
            KAFKA_SASL_PASSWORD=PASSWORD,
            KAFKA_SSL_CAFILE=str(ca),
        )
        child = f"C-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        for event in (registered(child, now), missing_opened(child_id=child, at=now)):
            r = httpx.post(f"{ingest.url}/v1/events", json=event, headers=AUTH, timeout=30)
            assert r.status_code == 202, r.text
        wait_until(
            lambda: any(child in str(m["Subject"]) for m in [m for _, m in notify.smtp.messages]),
            90,
            "the caseworker's mail",
        )
        assert notify.mails_to(CASEWORKER)
    finally:
        if notify is not None:
            notify.stop()
        rules.stop()
        ingest.stop()
