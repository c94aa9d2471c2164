"""What the state packs (WA, FL, GA, TX, MO) added to the engine: per-risk facts, conditional
deadlines (`due_when`), `fire_after` in calendar days or at the next local time of day, and
resolutions that only count since a duty's start. The packs' own deadlines are scenario tests in
rules/tests/state-*.yaml."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.escalations import Escalation
from services.common.events import EventBase
from services.common.zones import zone_of
from services.rules.core import Engine, Tick
from services.rules.offline import VirtualRun
from services.rules.policy import FACT_FIELDS, FireAt, next_local_time
from services.rules.state import STATE_VERSION, ChildState
from tests.support import engine_event

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
LA = zone_of("WA")
NY = zone_of("FL")


def event(
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    occurred_at: datetime,
    state: str,
    child: str = "C-1",
) -> EventBase:
    return engine_event(event_id, event_type, payload, occurred_at, state=state, child=child)


def opened(event_id: str, at: datetime, state: str, **payload: Any) -> EventBase:
    body = {"episode_id": "E-1", "last_seen_at": (at - HOUR).isoformat()}
    body["circumstances"] = "runaway"
    return event(event_id, "missing.opened", {**body, **payload}, at, state)


def effort(event_id: str, at: datetime) -> EventBase:
    payload = {"episode_id": "E-1", "effort": "contact_friends"}
    return event(event_id, "missing.search_effort", payload, at, "FL")


def notified(event_id: str, at: datetime, party: str, state: str = "TX") -> EventBase:
    payload = {"episode_id": "E-1", "party": party}
    return event(event_id, "missing.party_notified", payload, at, state)


def located(
    event_id: str, at: datetime, state: str = "TX", recorded: datetime | None = None
) -> EventBase:
    """The child found at `at`, recorded by the agency at `recorded` (default: then)."""
    payload = {"episode_id": "E-1", "located_at": at.isoformat()}
    return event(event_id, "missing.located", payload, recorded or at, state)


def by_rule(out: list[Escalation], status: str = "firing") -> dict[str, Escalation]:
    return {e.rule_id: e for e in out if e.status == status}


# --- facts ---------------------------------------------------------------------------------------


def test_the_fact_has_every_fact_field_and_nothing_else(engine: Engine) -> None:
    ev = opened("o", T0, "FL")
    state = ChildState.new(ev)
    assert set(engine._fact(state, ev, "standard")) == set(FACT_FIELDS)


def test_each_immediate_risk_and_risk_indicator_is_a_flag(engine: Engine) -> None:
    reg = event(
        "r",
        "child.registered",
        {"date_of_birth": "2010-01-01", "sex": "female", "risk_indicators": ["pregnant"]},
        T0,
        "FL",
    )
    state, _ = engine.evaluate(None, reg, T0)
    ev = opened("o", T0 + HOUR, "FL", immediate_risks=["incapacity", "out_of_character"])
    state, _ = engine.evaluate(state, ev, T0 + HOUR)
    assert state is not None
    fact = engine._fact(state, ev, "standard")
    flags = {
        k
        for k, v in fact.items()
        if k.startswith(("immediate_risk_", "risk_indicator_")) and v is True
    }
    assert flags == {
        "immediate_risk_incapacity",
        "immediate_risk_out_of_character",
        "risk_indicator_pregnant",
    }
    assert fact["immediate_risk_count"] == 2 and fact["risk_indicator_count"] == 1


# --- due_when -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risks", "due"),
    [
        ([], 4 * HOUR),  # Florida: 4 h of active search first
        (["medical_need"], HOUR),  # immediately: the policy's 1 h grace
        (["with_dangerous_person", "incapacity"], HOUR),
    ],
)
def test_due_when_picks_the_first_deadline_whose_condition_holds(
    engine: Engine, risks: list[str], due: timedelta
) -> None:
    _, out = engine.evaluate(None, opened("o", T0, "FL", immediate_risks=risks), T0)
    le = by_rule(out)["federal.report-law-enforcement"]
    assert le.due_at == T0 + due
    assert by_rule(out)["federal.report-ncmec"].due_at == T0 + DAY  # no due_when: unchanged


def test_an_immediate_deadline_has_an_overdue_step(engine: Engine) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "WA", circumstances="abducted"), T0)
    _, out = engine.evaluate(state, Tick(), T0 + HOUR + timedelta(microseconds=1))
    assert "federal.report-law-enforcement.overdue" in by_rule(out)


# --- fire_after: calendar days and the next local time -------------------------------------------


@pytest.mark.parametrize(
    ("start", "clock", "expected"),
    [
        # an ordinary night in Seattle (PST, UTC-8)
        (datetime(2026, 11, 24, 4, 0, tzinfo=UTC), time(6), datetime(2026, 11, 24, 14, 0)),
        # exactly 06:00 local is not after the start: the next morning
        (datetime(2026, 11, 24, 14, 0, tzinfo=UTC), time(6), datetime(2026, 11, 25, 14, 0)),
        # spring forward: 06:00 PDT is 13:00Z
        (datetime(2026, 3, 8, 6, 0, tzinfo=UTC), time(6), datetime(2026, 3, 8, 13, 0)),
        # fall back: 06:00 PST is 14:00Z
        (datetime(2026, 11, 1, 5, 0, tzinfo=UTC), time(6), datetime(2026, 11, 1, 14, 0)),
        # 02:30 does not exist on 2026-03-08: counted with the offset before the change (PST)
        (datetime(2026, 3, 8, 6, 0, tzinfo=UTC), time(2, 30), datetime(2026, 3, 8, 10, 30)),
        # 01:30 happens twice on 2026-11-01: the first (PDT, 08:30Z)
        (datetime(2026, 11, 1, 5, 0, tzinfo=UTC), time(1, 30), datetime(2026, 11, 1, 8, 30)),
        # after the first 01:30 but before the second: the next day's, not the repeat
        (datetime(2026, 11, 1, 9, 0, tzinfo=UTC), time(1, 30), datetime(2026, 11, 2, 9, 30)),
    ],
)
def test_next_local_time_follows_the_local_clock(
    start: datetime, clock: time, expected: datetime
) -> None:
    assert next_local_time(start, LA, clock) == expected.replace(tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    clock=st.times(),
)
def test_next_local_time_is_the_first_such_instant_within_a_day(
    start: datetime, clock: time
) -> None:
    found = next_local_time(start, LA, clock.replace(second=0, microsecond=0))
    assert start < found <= start + timedelta(hours=25)


def test_fire_after_in_days_keeps_the_local_wall_clock_time() -> None:
    start = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # Wednesday 10:00 EST
    fired = FireAt(days=7).at(start, NY)
    assert fired == datetime(2026, 3, 11, 14, 0, tzinfo=UTC)  # Wednesday 10:00 EDT
    assert FireAt(elapsed=timedelta(days=7)).at(start, NY) == start + 7 * DAY


# --- since: start -------------------------------------------------------------------------------


def test_a_late_search_effort_discharges_a_missed_week_late_and_the_current_one_on_time(
    engine: Engine,
) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "FL"), T0)
    state, out = engine.evaluate(state, Tick(), T0 + 14 * DAY + HOUR)
    assert "fl.search-week-2.overdue" in by_rule(out) and "fl.search-week-3" in by_rule(out)
    _, out = engine.evaluate(state, effort("e", T0 + 15 * DAY), T0 + 15 * DAY)
    resolved = by_rule(out, "resolved")
    assert resolved["fl.search-week-2"].evidence["on_time"] is False
    assert resolved["fl.search-week-3"].evidence["on_time"] is True
    assert resolved["fl.search-week-1"].evidence["on_time"] is False


def test_an_effort_before_a_week_begins_neither_discharges_it_nor_cancels_it(
    engine: Engine,
) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "FL"), T0)
    state, out = engine.evaluate(state, effort("e", T0 + DAY), T0 + DAY)
    assert set(by_rule(out, "resolved")) == {"fl.search-week-1"}
    assert state is not None
    assert {p.rule_id for p in state.pending} >= {"fl.search-week-2", "fl.search-week-3"}


def test_an_effort_after_a_week_began_that_arrives_before_the_tick_discharges_it_unfired(
    engine: Engine,
) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "FL"), T0)
    late = T0 + 7 * DAY + HOUR
    state, out = engine.evaluate(state, effort("e", late), late)
    assert state is not None
    assert "fl.search-week-2" not in {p.rule_id for p in state.pending}
    assert "fl.search-week-2" not in by_rule(out)  # its week's effort came before it fired


def test_an_event_at_exactly_the_start_counts(engine: Engine) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "TX"), T0)
    state, out = engine.evaluate(state, located("l", T0 + DAY), T0 + DAY)
    assert "tx.return-notify-court" in by_rule(out)
    _, out = engine.evaluate(state, notified("n", T0 + DAY, "court"), T0 + DAY)
    assert "tx.return-notify-court" in by_rule(out, "resolved")


def test_an_escalation_opened_before_state_v3_counts_an_event_of_any_time(
    engine: Engine,
) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "TX"), T0)
    state, _ = engine.evaluate(state, located("l", T0 + DAY), T0 + DAY)
    assert state is not None
    [esc] = [e for e in state.open.values() if e.rule_id == "tx.return-notify-court"]
    assert esc.started_at == T0 + DAY
    earlier = notified("n", T0 + HOUR, "court")  # made before the return
    _, out = engine.evaluate(state, earlier, T0 + DAY)
    assert "tx.return-notify-court" not in by_rule(out, "resolved")
    legacy = state.copy_state()
    legacy.open[esc.escalation_id] = esc.model_copy(update={"started_at": None})
    _, out = engine.evaluate(legacy, earlier, T0 + DAY)
    assert "tx.return-notify-court" in by_rule(out, "resolved")


# --- state v3 --------------------------------------------------------------------------------


def test_state_v2_loads_as_the_current_version(engine: Engine) -> None:
    state, _ = engine.evaluate(None, opened("o", T0, "TX"), T0)
    assert state is not None and state.v == STATE_VERSION == 4
    data = json.loads(state.to_bytes())
    assert all("started_at" in e for e in data["open"].values())
    for e in data["open"].values():
        del e["started_at"]
    data["v"] = 2
    loaded = ChildState.from_bytes(json.dumps(data).encode())
    assert loaded.v == STATE_VERSION
    assert all(e.started_at is None for e in loaded.open.values())
    assert json.loads(loaded.to_bytes())["v"] == STATE_VERSION


# --- data minimisation ---------------------------------------------------------------------------


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(state=st.sampled_from(["TX", "MO", "WA", "FL", "GA", "OH"]))
def test_a_disclosed_crime_never_reaches_parties_providers_or_shelters(
    engine: Engine, state: str
) -> None:
    child, _ = engine.evaluate(None, opened("o", T0, state), T0)
    crime = event(
        "c",
        "return.crime_disclosed",
        {"episode_id": "E-1", "crimes": ["sex_trafficking"]},
        T0 + DAY,
        state,
    )
    child, out = engine.evaluate(child, crime, T0 + DAY)
    _, later = engine.evaluate(child, Tick(), T0 + 5 * DAY)
    forbidden = {"court", "guardian_ad_litem", "attorney", "parent", "placement_provider"}
    forbidden.add("shelter_network")
    for esc in out + later:
        if esc.rule_id.startswith("tx.crime-disclosed-report"):
            assert not forbidden & set(esc.recipients)


# --- out of order and late, for the state duties (an independent review's cases) -----------


def test_a_notice_that_arrives_before_its_trigger_discharges_the_duty_in_advance(
    engine: Engine,
) -> None:
    """Texas: the court is told of the return at +6 h, and that notice reaches us before the
    return (+5 h) itself. Missouri: the juvenile officer is told before the episode's opening
    event arrives. Florida: the first week's search effort arrives before the opening."""
    run = VirtualRun(engine)
    run.apply(opened("o", T0, "TX"))
    run.apply(notified("court", T0 + 6 * HOUR, "court"), now=T0 + 6 * HOUR)
    out = run.apply(located("back", T0 + 5 * HOUR), now=T0 + 7 * HOUR)
    out += run.advance(T0 + 3 * DAY)
    assert "tx.return-notify-court" not in by_rule(out)
    assert "tx.return-notify-attorney" in by_rule(out)  # nobody told the attorney

    for state, first, rule in (
        ("MO", notified("jo", T0 + HOUR, "juvenile_officer", "MO"), "mo.notify-juvenile-officer"),
        ("FL", effort("eff", T0 + DAY), "fl.search-week-1"),
    ):
        run = VirtualRun(engine)
        run.apply(first, now=T0 + 2 * DAY)
        out = run.apply(opened("o", T0, state), now=T0 + 2 * DAY)
        out += run.advance(T0 + 10 * DAY)
        fired = {e.rule_id for e in out if e.status == "firing"}
        assert rule not in fired and f"{rule}.overdue" not in fired


def test_an_old_report_re_sent_does_not_discharge_a_new_findings_duty(engine: Engine) -> None:
    old = T0 - 600 * DAY
    identified = ("trafficking.identified", {"status": "suspected", "type": "sex"})
    reported = ("trafficking.law_enforcement_reported", {"report_number": "T-1"})
    run = VirtualRun(engine)
    run.apply(event("i-1", *identified, old, "MO"))
    run.apply(event("r-1", *reported, old + HOUR, "MO"))
    out = run.apply(event("i-2", *identified, T0, "MO"))
    assert "federal.trafficking-report" in by_rule(out)
    again = run.apply(event("r-1", *reported, old + HOUR, "MO"), now=T0 + HOUR)
    assert again == []  # re-sent: no effect, and certainly no discharge
    state = run.states["demo-agency:C-1"]
    assert any(e.rule_id == "federal.trafficking-report" for e in state.open.values())


def test_a_return_recorded_after_the_overnight_rule_fired_means_it_was_never_owed(
    engine: Engine,
) -> None:
    """Washington: last seen 22:00, found 04:00, recorded 09:00 — after the 06:00 tick fired
    the overnight staffing duty. It resolves as not owed, and never goes overdue."""
    seen = datetime(2026, 11, 24, 22, 0, tzinfo=LA)
    run = VirtualRun(engine)
    run.apply(opened("o", seen + HOUR, "WA", last_seen_at=seen.isoformat()))
    out = run.advance(seen + 9 * HOUR)
    assert "wa.supervisor-staffing-overnight" in by_rule(out)
    back = located("back", seen + 6 * HOUR, "WA", recorded=seen + 11 * HOUR)
    out = run.apply(back)
    out += run.advance(seen + 5 * DAY)
    [settled] = [e for e in out if e.rule_id == "wa.supervisor-staffing-overnight"]
    assert settled.status == "resolved" and settled.evidence["not_owed"] is True
    assert "wa.supervisor-staffing-overnight.overdue" not in by_rule(out)


def test_a_return_after_the_firing_time_does_not_cancel_the_duty_whatever_arrives_first(
    engine: Engine,
) -> None:
    """Found at 07:00, after the 06:00 firing time: the child was missing overnight, so the
    duty is owed, whether the return or the tick is evaluated first."""
    seen = datetime(2026, 11, 24, 22, 0, tzinfo=LA)
    back = located("back", seen + 9 * HOUR, "WA")
    for tick_first in (True, False):
        state, _ = engine.evaluate(
            None, opened("o", seen + HOUR, "WA", last_seen_at=seen.isoformat()), seen + HOUR
        )
        fired: list[Escalation] = []
        if tick_first:
            state, out = engine.evaluate(state, Tick(), seen + 8 * HOUR + 30 * 60 * SECOND)
            fired += out
        state, out = engine.evaluate(state, back, seen + 9 * HOUR)
        fired += out
        state, out = engine.evaluate(state, Tick(), seen + 10 * HOUR)
        fired += out
        assert "wa.supervisor-staffing-overnight" in by_rule(fired), tick_first


def test_a_rule_that_fires_later_never_starts_before_the_agency_knew(engine: Engine) -> None:
    """Washington: last seen three days before the agency learned of it; the overnight duty
    starts when the report arrives, so its two days count from then."""
    seen = datetime(2026, 11, 21, 22, 0, tzinfo=LA)
    learned = seen + 3 * DAY
    run = VirtualRun(engine)
    out = run.apply(opened("o", learned, "WA", last_seen_at=seen.isoformat()))
    out += run.advance(learned + HOUR)
    duty = by_rule(out)["wa.supervisor-staffing-overnight"]
    assert duty.due_at is not None and duty.due_at > learned
