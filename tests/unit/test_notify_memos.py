"""Notify's memos answer as what they stand for would: plans shared by `plan_key` (the
Notifier makes one plan per key) and the routing memo (`Routing.match`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from services.common.escalations import Escalation
from services.notify import routing as routing_module
from services.notify.config import load_routing
from services.notify.routing import Routing, labels_of
from services.notify.schedule import make_plan, plan_key
from tests.unit.test_notify_logic import ROOT, T0, escalation

AGENCIES = ("demo-agency", "mo-jackson", "tx-el-paso", "an-agency-with-no-file")
RULES = (
    "federal.report-ncmec",
    "federal.report-law-enforcement",
    "federal.return-screening",
    "risk.tier-changed",
)


@pytest.fixture(scope="module")
def routing() -> Routing:
    return load_routing(ROOT / "rules" / "routing.yaml")


def varied() -> Iterator[Escalation]:
    """Escalations differing in everything plan_key holds."""
    for agency, rule, severity, (state, county), status, recipients in itertools.product(
        AGENCIES,
        RULES,
        ("low", "high", "critical"),
        (("MO", "Jackson"), ("MO", None), ("TX", "El Paso")),
        ("firing", "resolved"),
        (("caseworker",), ("caseworker", "supervisor"), ("law_enforcement", "ncmec")),
    ):
        yield escalation(
            agency_id=agency,
            rule_id=rule,
            severity=severity,
            jurisdiction={"state": state, "county": county},
            status=status,
            recipients=list(recipients),
        )


def unlike(esc: Escalation) -> Escalation:
    """The same plan_key, everything else about the escalation changed."""
    changes: dict[str, Any] = {
        "escalation_id": "f" * 32,
        "policy_version": "w",
        "action": "Something else entirely",
        "basis": "another basis",
        "child_id": "C-9",
        "episode_id": "E-9",
        "due_at": T0 + timedelta(days=3),
        "evidence": {"age": 9},
        "triggered_by": ("ev-9",),
        "created_at": T0 + timedelta(hours=5),
        "caseworker_id": "W-9",
        "supervisor_id": "S-9",
        "subject": None,
    }
    return esc.model_copy(update=changes)


def test_escalations_with_one_plan_key_get_equal_plans(routing: Routing) -> None:
    plans: dict[tuple[str, ...], Any] = {}
    for esc in varied():
        other = unlike(esc)
        assert plan_key(other) == plan_key(esc)
        plan = make_plan(esc, routing)
        assert make_plan(other, routing) == plan
        # Escalations the key does not tell apart must get the same plan.
        assert plans.setdefault(plan_key(esc), plan) == plan
    assert len({repr(p) for p in plans.values()}) > 10  # the mix reaches many plans


def test_the_routing_memo_answers_as_matching_does(
    routing: Routing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routing_module, "MAX_MATCHED", 7)  # cleared many times below
    routing._matched.clear()  # (the test above filled it)
    for esc in varied():
        for recipient_class in esc.recipients:
            labels = labels_of(esc, recipient_class)
            expected = routing._match(labels)
            assert routing.match(labels) == expected
            assert routing.match(labels) == expected  # remembered
    assert len(routing._matched) <= 7
