"""The synthetic caseload is valid, deterministic and shaped like docs/domain.md says."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from services.common.events import parse_event_obj
from services.localdev.simulate import SimConfig, generate

END = datetime(2026, 11, 24, tzinfo=UTC)


def test_every_event_is_valid_and_in_order() -> None:
    events = generate(SimConfig(children=150, days=60, end=END, seed=4))
    assert len(events) > 300
    for e in events:
        parse_event_obj(e)
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    assert max(times) <= END.isoformat()


def test_same_seed_same_caseload() -> None:
    a = generate(SimConfig(children=30, days=30, end=END, seed=9))
    b = generate(SimConfig(children=30, days=30, end=END, seed=9))
    c = generate(SimConfig(children=30, days=30, end=END, seed=10))
    assert a == b and a != c


def test_congregate_care_runs_more_and_runs_repeat() -> None:
    events = generate(SimConfig(children=1500, days=180, end=END, seed=2))
    setting: dict[str, str] = {}
    runs: Counter[str] = Counter()
    runs_by_setting: Counter[str] = Counter()
    children_by_setting: Counter[str] = Counter()
    for e in events:
        if e["event_type"] == "placement.started" and e["child_id"] not in setting:
            setting[e["child_id"]] = e["payload"]["setting"]
            children_by_setting[e["payload"]["setting"]] += 1
        if e["event_type"] == "missing.opened":
            runs[e["child_id"]] += 1
            runs_by_setting[setting[e["child_id"]]] += 1
    rate = {s: runs_by_setting[s] / children_by_setting[s] for s in children_by_setting}
    assert rate["group_home"] > 1.5 * rate["foster_family_nonrelative"] > 0
    assert rate["foster_family_relative"] < rate["foster_family_nonrelative"]
    ran = [n for n in runs.values() if n]
    assert sum(1 for n in ran if n > 1) / len(ran) > 0.2  # many run more than once
