"""Session fixtures. The broker is real: started from the Kafka jars on free loopback ports,
unless KAFKA_BOOTSTRAP_SERVERS names one that is already running."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.support import Broker, temp_dir


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = Broker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.destroy()


@pytest.fixture(scope="session")
def log_dir() -> Iterator[Path]:
    """Service logs. Set CAREALERT_TEST_LOGS=DIR to keep them."""
    keep = os.environ.get("CAREALERT_TEST_LOGS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with temp_dir() as d:
        yield d


@pytest.fixture(scope="module")
def producer(bootstrap: str) -> Iterator[KafkaProducer]:
    """A plain producer for tests that write straight to Kafka."""
    p = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    yield p
    p.close()
