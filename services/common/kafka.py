"""Kafka client configuration and start-up helpers shared by the services."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.common import topics

log = logging.getLogger(__name__)


def retry_delay_s(attempt: int, cap_s: float = 30.0) -> float:
    """Backoff before trying a refused Kafka write again: 0.5 s, 1 s, 2 s, ... up to `cap_s`."""
    return float(min(cap_s, 0.25 * 2 ** min(max(attempt, 1), 8)))


class KafkaUnavailable(RuntimeError):
    """The brokers could not be reached within the allowed time."""


def producer_config(bootstrap: list[str], *, client_id: str, timeout_s: float) -> dict[str, Any]:
    """kafka-python producer settings for writes that must be durable before we answer.

    acks=all and idempotence: a retried send is written once. `delivery_timeout_ms` equals the
    caller's wait, so when the caller gives up on a record the producer has given up on it too
    and it can not appear on the topic after the client was told 503.
    """
    timeout_ms = int(timeout_s * 1000)
    return {
        "bootstrap_servers": bootstrap,
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


def admin(bootstrap: list[str], *, client_id: str, timeout_s: float = 10.0) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {','.join(bootstrap)} is not reachable") from exc


def wait_for_kafka(bootstrap: list[str], *, client_id: str, timeout_s: float) -> None:
    """Block until the brokers answer a metadata request, at most `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = admin(bootstrap, client_id=client_id, timeout_s=min(5.0, timeout_s))
            try:
                client.list_topics()
                return
            finally:
                client.close()
        except (KafkaUnavailable, KafkaError) as exc:
            if time.monotonic() >= deadline:
                raise KafkaUnavailable(
                    f"Kafka at {','.join(bootstrap)} did not answer within {timeout_s:.0f}s"
                ) from exc
            time.sleep(0.5)


def ensure_topics(
    bootstrap: list[str],
    *,
    partitions: int,
    replication: int,
    names: Iterable[str] = topics.ALL,
    client_id: str = "carealert-admin",
    compacted: bool = False,
) -> list[str]:
    """Create the topics that are missing (compacted if asked); return the names created.
    Existing topics are left exactly as they are (their partition count is never changed)."""
    client = admin(bootstrap, client_id=client_id)
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


def partition_counts(
    bootstrap: list[str], names: Iterable[str], *, client_id: str
) -> dict[str, int]:
    """The number of partitions of each named topic (0 if it does not exist)."""
    client = admin(bootstrap, client_id=client_id)
    try:
        out = dict.fromkeys(names, 0)
        for described in client.describe_topics(list(out)):
            name = described.get("name") or described.get("topic")
            out[name] = len(described.get("partitions") or [])
        return out
    finally:
        client.close()
