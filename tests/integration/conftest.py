"""Fixtures shared by the integration modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.notify_support import NotifyStack, start_stack
from tests.integration.services import ingest_service
from tests.support import Service


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotifyStack]:
    """A notify deployment with its sinks, one per test module."""
    s = start_stack(bootstrap, log_dir, tmp_path_factory.mktemp("notify"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ingest(bootstrap: str, log_dir: Path) -> Iterator[Service]:
    """An ingest service on the test broker, one per test module."""
    svc = ingest_service(bootstrap, log_dir)
    svc.start()
    yield svc
    svc.stop()
