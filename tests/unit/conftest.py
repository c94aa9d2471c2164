"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.rules.core import Engine
from services.rules.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The engine with the shipped policy."""
    return Engine(load_policy(ROOT / "rules"))
