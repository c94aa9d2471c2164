"""The pure engine: determinism, idempotence, robustness to order, bounded state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.events import EventBase
from services.common.ladder import one_up
from services.rules.core import ConflictingDuplicate, Engine, Tick
from services.rules.dedup import MAX_BUCKETS, MAX_DIGESTS
from services.rules.offline import VirtualRun
from services.rules.state import MAX_EPISODES, MAX_OPEN, ChildState
from tests.support import engine_event

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def ev(
    n: int,
    event_type: str,
    payload: dict[str, Any],
    minutes: int,
    state: str = "MO",
    child: str = "C-1",
) -> EventBase:
    at = T0 + timedelta(minutes=minutes)
    return engine_event(f"ev-{n}", event_type, payload, at, state=state, child=child)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


EPISODE_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "child.registered",
        {"date_of_birth": "2011-05-01", "sex": "female", "risk_indicators": ["substance_use"]},
    ),
    ("placement.started", {"placement_id": "P-1", "setting": "group_home"}),
    (
        "missing.opened",
        {
            "episode_id": "E-1",
            "last_seen_at": at(-30),
            "circumstances": "runaway",
            "immediate_risks": ["medical_need"],
        },
    ),
    (
        "missing.law_enforcement_reported",
        {
            "episode_id": "E-1",
            "le_agency": "KCPD",
            "report_number": "R",
            "ncic_entry_confirmed": False,
        },
    ),
    ("missing.ncmec_reported", {"episode_id": "E-1", "ncmec_case_number": "N"}),
    ("missing.search_effort", {"episode_id": "E-1", "effort": "contact_friends"}),
    ("missing.party_notified", {"episode_id": "E-1", "party": "court"}),
    ("missing.staffing_held", {"episode_id": "E-1", "level": "supervisor"}),
    ("missing.located", {"episode_id": "E-1", "located_at": at(600)}),
    ("screening.completed", {"episode_id": "E-1", "tool": "cse_it", "result": "clear_concern"}),
    ("return.debrief_completed", {"episode_id": "E-1", "factors": ["x"]}),
    ("return.crime_disclosed", {"episode_id": "E-1", "crimes": ["robbery"]}),
    ("return.crime_reported", {"episode_id": "E-1", "le_agency": "HPD", "report_number": "C"}),
    ("trafficking.identified", {"status": "suspected", "type": "sex"}),
    ("trafficking.law_enforcement_reported", {"report_number": "T"}),
    ("placement.ended", {"placement_id": "P-1", "reason": "runaway"}),
    ("child.updated", {"date_of_birth": "2011-05-01", "sex": "female"}),
]


def run_all(engine: Engine, events: list[EventBase], until: datetime) -> list[tuple[str, str, str]]:
    run = VirtualRun(engine)
    out = []
    for e in events:
        out += run.apply(e)
    out += run.advance(until)
    return [(e.escalation_id, e.rule_id, e.status) for e in out]


def timeline(order: list[int], state: str) -> list[EventBase]:
    return [ev(i, *EPISODE_EVENTS[i], minutes=10 * pos, state=state) for pos, i in enumerate(order)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(EPISODE_EVENTS))),
    state=st.sampled_from(["MO", "KY", "TX", "WA", "FL", "GA", "OH"]),
)
def test_any_order_is_deterministic_and_consistent(
    engine: Engine, order: list[int], state: str
) -> None:
    events = timeline(order, state)
    first = run_all(engine, events, T0 + timedelta(days=5))
    again = run_all(engine, events, T0 + timedelta(days=5))
    assert first == again  # replay reproduces the same ids
    fired = {eid for eid, _, status in first if status == "firing"}
    resolved = [eid for eid, _, status in first if status == "resolved"]
    assert set(resolved) <= fired  # nothing resolves what never fired
    assert len(resolved) == len(set(resolved))  # resolved once
    firing = [eid for eid, _, status in first if status == "firing"]
    assert len(firing) == len(set(firing))  # fired once


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(EPISODE_EVENTS))),
    redeliver=st.lists(st.integers(0, len(EPISODE_EVENTS) - 1), max_size=10),
)
def test_redelivered_events_have_no_effect(
    engine: Engine, order: list[int], redeliver: list[int]
) -> None:
    events = timeline(order, "MO")
    once = run_all(engine, events, T0 + timedelta(days=5))
    with_dups = events + [events[i] for i in redeliver]
    assert run_all(engine, with_dups, T0 + timedelta(days=5)) == once


def test_evaluate_does_not_mutate_its_input(engine: Engine) -> None:
    state, _ = engine.evaluate(None, ev(1, *EPISODE_EVENTS[2], minutes=0), T0)
    assert state is not None
    before = state.to_bytes()
    engine.evaluate(state, ev(2, *EPISODE_EVENTS[4], minutes=5), T0)
    engine.evaluate(state, Tick(), T0 + timedelta(days=3))
    assert state.to_bytes() == before


def test_tick_without_state_or_deadline_is_a_no_op(engine: Engine) -> None:
    assert engine.evaluate(None, Tick(), T0) == (None, [])
    state, _ = engine.evaluate(None, ev(1, *EPISODE_EVENTS[0], minutes=0), T0)
    assert state is not None
    assert engine.evaluate(state, Tick(), T0 + timedelta(days=400)) == (state, [])


def test_ids_differ_between_children_and_episodes(engine: Engine) -> None:
    _, a = engine.evaluate(None, ev(1, *EPISODE_EVENTS[2], minutes=0, child="C-1"), T0)
    _, b = engine.evaluate(None, ev(1, *EPISODE_EVENTS[2], minutes=0, child="C-2"), T0)
    assert {e.escalation_id for e in a}.isdisjoint({e.escalation_id for e in b})


def test_state_stays_bounded_for_a_child_with_many_events(engine: Engine) -> None:
    run = VirtualRun(engine)
    for n in range(300):
        episode = f"E-{n}"
        run.apply(
            ev(
                3 * n,
                "missing.opened",
                {"episode_id": episode, "last_seen_at": at(60 * n - 5), "circumstances": "runaway"},
                minutes=60 * n,
            )
        )
        run.apply(
            ev(
                3 * n + 1,
                "missing.located",
                {"episode_id": episode, "located_at": at(60 * n + 30)},
                minutes=60 * n + 30,
            )
        )
        run.apply(
            ev(
                3 * n + 2,
                "placement.started",
                {"placement_id": f"P-{n}", "setting": "group_home"},
                minutes=60 * n + 40,
            )
        )
    state = run.states["demo-agency:C-1"]
    # Within its bounds (services.rules.state.bound, tests/unit/test_state_bounds.py): the
    # newest kept, the oldest dropped.
    assert sum(len(b.ids) for b in state.digests.values()) <= MAX_DIGESTS
    assert len(state.digests) <= MAX_BUCKETS and "e:E-299" in state.digests
    assert len(state.episodes) <= MAX_EPISODES and "E-299" in state.episodes
    assert len(state.open) == MAX_OPEN
    assert {e.episode_id for e in state.open.values()} >= {"E-299"}
    # About 220 live duties at once (an episode an hour: 72 h of return duties, 24 h of
    # Missouri's three party notices): past MAX_OPEN the oldest are dropped, and counted.
    assert state.forgotten > 0
    assert len(state.to_bytes()) < 100_000
    later, _ = engine.evaluate(state, Tick(), T0 + timedelta(days=800))
    assert later is not None and later.digests == {}  # past retention, every episode closed


def test_escalation_carries_subject_for_law_enforcement(engine: Engine) -> None:
    opened = ev(
        1,
        "missing.opened",
        {
            "episode_id": "E-1",
            "last_seen_at": at(-30),
            "circumstances": "runaway",
            "description": {"name": "Jane", "clothing": "red coat"},
        },
        minutes=0,
    )
    _, out = engine.evaluate(None, opened, T0)
    alert = next(e for e in out if e.rule_id == "alert.missing-child")
    assert (
        alert.subject is not None
        and alert.subject.name == "Jane"
        and alert.subject.clothing == "red coat"
    )


@pytest.mark.parametrize(
    ("given_", "widened"),
    [
        (("caseworker",), ("caseworker", "supervisor")),
        (("caseworker", "supervisor"), ("caseworker", "supervisor", "director")),
        (("law_enforcement",), ("law_enforcement",)),
    ],
)
def test_widen(given_: tuple[str, ...], widened: tuple[str, ...]) -> None:
    assert one_up(given_) == widened


def test_state_round_trips(engine: Engine) -> None:
    state, _ = engine.evaluate(None, ev(1, *EPISODE_EVENTS[2], minutes=0), T0)
    assert state is not None
    assert ChildState.from_bytes(state.to_bytes()) == state


def test_a_resend_has_no_effect_and_a_changed_event_with_the_same_id_is_refused(
    engine: Engine,
) -> None:
    opened = ev(
        1,
        "missing.opened",
        {"episode_id": "E-1", "last_seen_at": at(-5), "circumstances": "runaway"},
        minutes=0,
    )
    state, out = engine.evaluate(None, opened, T0)
    assert out
    again, out2 = engine.evaluate(
        state,
        ev(
            1,
            "missing.opened",
            {"episode_id": "E-1", "last_seen_at": at(-5), "circumstances": "runaway"},
            minutes=0,
        ),
        T0,
    )
    assert again is state and out2 == []
    changed = ev(
        1,
        "missing.opened",
        {"episode_id": "E-1", "last_seen_at": at(-5), "circumstances": "abducted"},
        minutes=0,
    )
    with pytest.raises(ConflictingDuplicate):
        engine.evaluate(state, changed, T0)


def test_state_stored_before_the_text_rules_still_loads() -> None:
    import json

    state = ChildState(agency_id="demo-agency", child_id="C-1", state="MO")
    data = json.loads(state.to_bytes())
    data["episodes"] = {
        "E-1": {
            "episode_id": "E-1",
            "opened_at": T0.isoformat(),
            "last_seen_at": T0.isoformat(),
            "circumstances": "runaway",
            "subject": {"name": "Ann\tLee", "clothing": "red coat\nblue jeans"},
        }
    }
    loaded = ChildState.from_bytes(json.dumps(data).encode())
    subject = loaded.episodes["E-1"].subject
    assert subject is not None and subject.clothing == "red coat blue jeans"
