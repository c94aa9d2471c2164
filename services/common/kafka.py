"""Kafka client configuration and start-up helpers shared by the services."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import KafkaTimeoutError as AIOKafkaTimeoutError
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import SecretStr

from services.common import topics

log = logging.getLogger(__name__)


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaClient:
    """Where the brokers are and how to reach them; one definition that each client library's
    configuration is made from (kafka-python, aiokafka, faust), so every client of every service
    speaks the same TLS and SASL."""

    bootstrap: tuple[str, ...]
    protocol: SecurityProtocol = "PLAINTEXT"
    mechanism: SaslMechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @classmethod
    def plaintext(cls, bootstrap: list[str]) -> KafkaClient:
        return cls(tuple(bootstrap))

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifies the brokers' certificate (and host name) against `cafile`, or the system's
        trust store; presents `certfile`/`keyfile` when set (mutual TLS)."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        if self.certfile is not None:
            context.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None)
        return context

    def kafka_python(self, **extra: Any) -> dict[str, Any]:
        """kafka-python keyword arguments (KafkaProducer, KafkaConsumer, KafkaAdminClient)."""
        config: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap),
            "security_protocol": self.protocol,
        }
        if self.tls:
            config["ssl_context"] = self.ssl_context()
        if self.sasl:
            config["sasl_mechanism"] = self.mechanism or "PLAIN"
            config["sasl_plain_username"] = self.username
            config["sasl_plain_password"] = (
                self.password.get_secret_value() if self.password else None
            )
        return {**config, **extra}

    def aiokafka(self, **extra: Any) -> dict[str, Any]:
        """aiokafka keyword arguments (AIOKafkaProducer, AIOKafkaConsumer)."""
        return self.kafka_python(**extra)  # aiokafka takes the same names

    def faust(self) -> dict[str, Any]:
        """faust.App keyword arguments: broker URLs and credentials."""
        import faust.auth as faust_auth  # only the rules worker runs faust

        # services.rules.transport: faust's aiokafka transport, reading committed records only
        config: dict[str, Any] = {"broker": [f"carealert://{s}" for s in self.bootstrap]}
        if self.sasl:
            config["broker_credentials"] = faust_auth.SASLCredentials(
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                mechanism=self.mechanism or "PLAIN",
                ssl_context=self.ssl_context(),
            )
        elif self.tls:
            config["broker_credentials"] = faust_auth.SSLCredentials(self.ssl_context())
        return config


def transient(exc: BaseException) -> bool:
    """Whether trying again can help: a connection or timeout while a broker restarts, or an
    error the Kafka client marks retriable. A record too large or a refused authorization is
    not."""
    if isinstance(exc, asyncio.TimeoutError | ConnectionError | AIOKafkaTimeoutError):
        return True
    return isinstance(exc, AIOKafkaError | KafkaError) and bool(getattr(exc, "retriable", False))


def retry_delay_s(attempt: int, cap_s: float = 30.0) -> float:
    """Backoff before trying a refused Kafka write again: 0.5 s, 1 s, 2 s, ... up to `cap_s`."""
    return float(min(cap_s, 0.25 * 2 ** min(max(attempt, 1), 8)))


class KafkaUnavailable(RuntimeError):
    """The brokers could not be reached within the allowed time."""


def producer_config(kafka: KafkaClient, *, client_id: str, timeout_s: float) -> dict[str, Any]:
    """kafka-python producer settings for writes that must be durable before we answer.

    acks=all and idempotence: a retried send is written once. `delivery_timeout_ms` equals the
    caller's wait, so when the caller gives up on a record the producer has given up on it too
    and it can not appear on the topic after the client was told 503.
    """
    timeout_ms = int(timeout_s * 1000)
    return kafka.kafka_python(
        **{
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 2,
            "compression_type": None,
            "max_block_ms": timeout_ms,
            "request_timeout_ms": max(1000, timeout_ms - 500),
            "delivery_timeout_ms": timeout_ms,
            "retry_backoff_ms": 100,
            "reconnect_backoff_max_ms": 1000,
        }
    )


def admin(kafka: KafkaClient, *, client_id: str, timeout_s: float = 10.0) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            **kafka.kafka_python(
                client_id=client_id,
                request_timeout_ms=int(timeout_s * 1000),
                bootstrap_timeout_ms=int(timeout_s * 1000),
            )
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {','.join(kafka.bootstrap)} is not reachable") from exc


def wait_for_kafka(kafka: KafkaClient, *, client_id: str, timeout_s: float) -> None:
    """Block until the brokers answer a metadata request, at most `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = admin(kafka, client_id=client_id, timeout_s=min(5.0, timeout_s))
            try:
                client.list_topics()
                return
            finally:
                client.close()
        except (KafkaUnavailable, KafkaError) as exc:
            if time.monotonic() >= deadline:
                raise KafkaUnavailable(
                    f"Kafka at {','.join(kafka.bootstrap)} did not answer within {timeout_s:.0f}s"
                ) from exc
            time.sleep(0.5)


def ensure_topics(
    kafka: KafkaClient,
    *,
    partitions: int,
    replication: int,
    names: Iterable[str] = topics.ALL,
    client_id: str = "carealert-admin",
    compacted: bool = False,
) -> list[str]:
    """Create the topics that are missing (compacted if asked); return the names created.
    Existing topics are left exactly as they are (their partition count is never changed)."""
    client = admin(kafka, client_id=client_id)
    try:
        existing = set(client.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                configs = {"cleanup.policy": "compact"} if compacted else {}
                client.create_topics(
                    [NewTopic(n, partitions, replication, topic_configs=configs) for n in missing],
                    timeout_ms=10_000,
                )
            except TopicAlreadyExistsError:
                pass  # another service created it between list and create
            log.info("created topics", extra={"count": len(missing)})
        return missing
    finally:
        client.close()


def partition_counts(kafka: KafkaClient, names: Iterable[str], *, client_id: str) -> dict[str, int]:
    """The number of partitions of each named topic (0 if it does not exist)."""
    client = admin(kafka, client_id=client_id)
    try:
        out = dict.fromkeys(names, 0)
        for described in client.describe_topics(list(out)):
            name = described.get("name") or described.get("topic")
            out[name] = len(described.get("partitions") or [])
        return out
    finally:
        client.close()
