"""Settings shared by every service. Each service subclasses `CommonSettings`; `main()` builds
one instance and passes it down (no module-level singleton)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.kafka import (
    KafkaClient,
    SaslMechanism,
    SecurityProtocol,
    ensure_topics,
    wait_for_kafka,
)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREALERT_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "CAREALERT_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Comma-separated host:port list of the Kafka brokers.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices(
            "KAFKA_SECURITY_PROTOCOL", "CAREALERT_KAFKA_SECURITY_PROTOCOL"
        ),
        description="PLAINTEXT (local default), SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "CAREALERT_KAFKA_SASL_MECHANISM"),
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL_* protocol).",
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "CAREALERT_KAFKA_SASL_USERNAME"),
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "CAREALERT_KAFKA_SASL_PASSWORD"),
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SSL_CAFILE", "CAREALERT_KAFKA_SSL_CAFILE"),
        description="CA certificate(s) that sign the brokers' certificates (PEM).",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SSL_CERTFILE", "CAREALERT_KAFKA_SSL_CERTFILE"),
        description="Client certificate for mutual TLS (PEM).",
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SSL_KEYFILE", "CAREALERT_KAFKA_SSL_KEYFILE"),
    )
    topic_partitions: int = Field(
        default=6, ge=1, le=1000, description="Partitions for topics created at start-up."
    )
    topic_replication: int = Field(
        default=1, ge=1, le=5, description="Replication factor for topics created at start-up."
    )
    kafka_wait_seconds: float = Field(
        default=60.0, gt=0, description="How long a service waits for Kafka at start-up."
    )
    env: Literal["production", "demo"] = Field(
        default="production",
        description="demo (what `make run` sets) accepts the public demo secrets and API keys"
        " and short secrets; anything else refuses them.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    tls_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (chain) for serving HTTPS (ingest, notify); with"
        " CAREALERT_TLS_KEYFILE. Unset: plain HTTP, for use behind a TLS-terminating proxy.",
    )
    tls_keyfile: Path | None = Field(default=None, description="PEM private key for HTTPS.")

    @model_validator(mode="after")
    def tls_pair(self) -> CommonSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("CAREALERT_TLS_CERTFILE and CAREALERT_TLS_KEYFILE go together")
        for path in (self.tls_certfile, self.tls_keyfile):
            if path is not None and not path.is_file():
                raise ValueError("a CAREALERT_TLS_* file does not exist")
        return self

    def uvicorn_tls(self) -> dict[str, str]:
        """uvicorn's keyword arguments for HTTPS, or none for plain HTTP."""
        if self.tls_certfile is None or self.tls_keyfile is None:
            return {}
        return {"ssl_certfile": str(self.tls_certfile), "ssl_keyfile": str(self.tls_keyfile)}

    stall_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A worker partition with records waiting whose committed position has not"
        " moved for this long (counted only while the broker answers and the worker is neither"
        " recovering nor in a retry backoff) is stalled: the worker turns unhealthy and exits.",
    )
    stall_check_interval_s: float = Field(
        default=5.0, gt=0, description="How often a worker compares its position with the end."
    )
    stall_exit_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a stalled worker stays up, unhealthy, before it exits (so probes"
        " and scrapes see why).",
    )
    stall_fault_file: Path | None = Field(
        default=None,
        description="Testing only: while this file exists the worker fetches nothing (its"
        " partitions are paused), to prove the stall detector.",
    )
    test_disabled_codecs: str = Field(
        default="",
        description="Testing only: comma-separated Kafka compression codecs (gzip, snappy, lz4,"
        " zstd) this worker behaves as if it did not have, to prove that an unreadable record"
        " holds its partition instead of killing the worker.",
    )

    @model_validator(mode="after")
    def sasl_needs_credentials(self) -> CommonSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "a SASL_* KAFKA_SECURITY_PROTOCOL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME"
                " and KAFKA_SASL_PASSWORD"
            )
        return self

    def connected_kafka(self, client_id: str) -> KafkaClient:
        """The brokers once they answer (at most `kafka_wait_seconds`), with the contract's
        topics created if missing. Blocking: services call it before they serve."""
        kafka = self.kafka()
        wait_for_kafka(kafka, client_id=client_id, timeout_s=self.kafka_wait_seconds)
        ensure_topics(kafka, partitions=self.topic_partitions, replication=self.topic_replication)
        return kafka

    def kafka(self) -> KafkaClient:
        """How every client of this service reaches the brokers."""
        return KafkaClient(
            bootstrap=tuple(self.bootstrap_list),
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
        )

    @property
    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
