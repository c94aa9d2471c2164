"""Statutory clocks at their edges (docs/clocks.md): local-calendar ages, on time at exactly the
deadline, calendar and business days across DST and holidays, lifelong de-duplication in
bounded state, late and out-of-order events, and state written by the previous release."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.escalations import Escalation
from services.common.events import EventBase
from services.common.zones import zone_name
from services.rules.clocks import DEFAULT_GRACE, parse_due
from services.rules.core import Engine, Tick
from services.rules.dedup import RETENTION
from services.rules.offline import VirtualRun
from services.rules.policy import later_than
from services.rules.state import STATE_VERSION, ChildState
from tests.support import engine_event

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ANY_DAY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


event = engine_event


def opened(event_id: str, at: datetime, episode: str = "E-1", **kw: Any) -> EventBase:
    payload = {"episode_id": episode, "last_seen_at": (at - HOUR).isoformat()}
    return event(event_id, "missing.opened", {**payload, "circumstances": "runaway"}, at, **kw)


def registered(event_id: str, at: datetime, dob: str, **kw: Any) -> EventBase:
    return event(event_id, "child.registered", {"date_of_birth": dob, "sex": "male"}, at, **kw)


def rules_of(out: list[Escalation]) -> dict[str, Escalation]:
    """The firing escalations by rule id."""
    return {e.rule_id: e for e in out if e.status == "firing"}


# --- ages on the local calendar ----------------------------------------------------------------


def test_age_is_counted_on_the_jurisdictions_local_date(engine: Engine) -> None:
    """05:30 UTC on the 13th birthday is still the day before in Missouri (UTC-6): the child is
    12, so the missing-child alert is critical (under 13)."""
    before_midnight = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
    state, _ = engine.evaluate(None, registered("r", T0, "2013-11-25"), T0)
    _, out = engine.evaluate(state, opened("o", before_midnight), before_midnight)
    alert = rules_of(out)["alert.missing-child"]
    assert alert.evidence["age"] == 12 and alert.severity == "critical"


def test_a_county_in_another_zone_has_its_own_date(engine: Engine) -> None:
    """06:30 UTC: 00:30 on the birthday in Houston (Central), 23:30 the day before in El Paso
    (Mountain)."""
    at = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
    ages = {}
    for county in ("Harris", "El Paso"):
        state, _ = engine.evaluate(None, registered("r", T0, "2013-11-25", state="TX"), T0)
        _, out = engine.evaluate(state, opened("o", at, state="TX", county=county), at)
        ages[county] = rules_of(out)["alert.missing-child"].evidence["age"]
    assert ages == {"Harris": 13, "El Paso": 12}
    assert zone_name("TX", "El Paso County") == "America/Denver"


@ANY_DAY
@given(
    minutes=st.integers(0, 48 * 60),
    offset=st.integers(-14 * 60, 14 * 60),
    place=st.sampled_from([("MO", None), ("TX", "El Paso"), ("KY", "Warren"), ("FL", "Bay")]),
)
def test_the_same_instant_with_any_utc_offset_gives_the_same_age_severity_and_deadlines(
    engine: Engine, minutes: int, offset: int, place: tuple[str, str | None]
) -> None:
    instant = datetime(2026, 11, 24, 0, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    state_code, county = place

    def run(written: datetime) -> list[tuple[str, str, Any, Any]]:
        state, _ = engine.evaluate(
            None, registered("r", T0 - 30 * HOUR, "2013-11-25", state=state_code), T0
        )
        _, out = engine.evaluate(
            state, opened("o", written, state=state_code, county=county), instant
        )
        return sorted((e.rule_id, e.severity, e.due_at, e.evidence.get("age")) for e in out)

    assert run(instant) == run(instant.astimezone(timezone(timedelta(minutes=offset))))


# --- on time at exactly the deadline -----------------------------------------------------------


def reported(event_id: str, at: datetime) -> EventBase:
    payload = {"episode_id": "E-1", "le_agency": "KCPD", "report_number": "R-1"}
    return event(
        event_id, "missing.law_enforcement_reported", {**payload, "ncic_entry_confirmed": True}, at
    )


def test_a_duty_discharged_at_exactly_its_deadline_is_on_time(engine: Engine) -> None:
    run = VirtualRun(engine)
    run.apply(opened("o", T0))  # Missouri: law enforcement within 2 h
    out = run.apply(reported("le", T0 + 2 * HOUR))
    out += run.advance(T0 + 5 * HOUR)
    resolved = [e for e in out if e.rule_id == "federal.report-law-enforcement"]
    assert [e.status for e in resolved] == ["resolved"]
    assert resolved[0].evidence["on_time"] is True
    assert resolved[0].evidence["discharged_at"] == (T0 + 2 * HOUR).isoformat()
    assert not [e for e in out if e.rule_id == "federal.report-law-enforcement.overdue"]


def test_one_moment_after_the_deadline_is_overdue(engine: Engine) -> None:
    run = VirtualRun(engine)
    run.apply(opened("o", T0))
    out = run.apply(reported("le", T0 + 2 * HOUR + timedelta(seconds=1)))
    overdue = rules_of(out)["federal.report-law-enforcement.overdue"]
    assert overdue.created_at == T0 + 2 * HOUR + timedelta(microseconds=1)
    resolved = [e for e in out if e.status == "resolved"]
    assert {e.rule_id for e in resolved} >= {
        "federal.report-law-enforcement",
        "federal.report-law-enforcement.overdue",
    }
    assert all(e.evidence["on_time"] is False for e in resolved)


def test_an_on_time_report_that_reaches_us_late_is_recorded_on_time(engine: Engine) -> None:
    """The overdue step fired (nothing had arrived); the report made at the deadline arrives an
    hour later: both resolve, and the record says on time."""
    state, _ = engine.evaluate(None, opened("o", T0), T0)
    state, out = engine.evaluate(state, Tick(), T0 + 2 * HOUR + timedelta(minutes=1))
    assert "federal.report-law-enforcement.overdue" in rules_of(out)
    _, out = engine.evaluate(state, reported("le", T0 + 2 * HOUR), T0 + 3 * HOUR)
    assert {e.rule_id: e.evidence["on_time"] for e in out if e.status == "resolved"} == {
        "federal.report-law-enforcement": True,
        "federal.report-law-enforcement.overdue": True,
    }


# --- deadlines in local time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "start", "state", "expected"),
    [
        # Calendar days keep the local wall-clock time across the spring-forward (Mar 8, 2026)
        ("2d", "2026-03-07T18:00:00+00:00", "MO", "2026-03-09T17:00:00+00:00"),
        # ... and across the fall-back (Nov 1, 2026)
        ("2d", "2026-10-31T17:00:00+00:00", "MO", "2026-11-02T18:00:00+00:00"),
        ("48h", "2026-03-07T18:00:00+00:00", "MO", "2026-03-09T18:00:00+00:00"),
        # Business days skip Thanksgiving and Georgia's state holiday the day after
        ("2 business days", "2026-11-25T15:00:00+00:00", "GA", "2026-12-02T05:00:00+00:00"),
        # A Friday evening: Monday is the first business day; midnight ends it
        (
            "end of next business day",
            "2026-11-13T23:00:00+00:00",
            "GA",
            "2026-11-17T05:00:00+00:00",
        ),
        # A Saturday start counts from Monday; daylight time began Sunday: midnight is 05:00 UTC
        ("1 business day", "2026-03-07T18:00:00+00:00", "MO", "2026-03-10T05:00:00+00:00"),
        ("immediately", "2026-11-25T15:00:00+00:00", "GA", "2026-11-25T16:00:00+00:00"),
        ("now", "2026-11-25T15:00:00+00:00", "GA", "2026-11-25T15:00:00+00:00"),
    ],
)
def test_deadlines_are_computed_on_the_local_calendar(
    due: str, start: str, state: str, expected: str
) -> None:
    from services.common.zones import zone_of

    got = parse_due(due).at(datetime.fromisoformat(start), zone_of(state), state, DEFAULT_GRACE)
    assert got == datetime.fromisoformat(expected)


def test_a_due_that_is_not_a_deadline_names_the_forms() -> None:
    with pytest.raises(ValueError, match="business days"):
        parse_due("3 days")
    with pytest.raises(ValueError, match="business days must be"):
        parse_due("0 business days")


@pytest.mark.parametrize(
    ("state", "federal", "later"),
    [
        ("2h", "24h", False),
        ("immediately", "24h", False),
        ("1d", "24h", True),  # a calendar day is 25 h on the fall-back day
        ("end of next business day", "24h", True),
        ("2 business days", "14d", False),
        ("2d", "2d", False),
        ("none", "24h", True),
    ],
)
def test_the_federal_floor_compares_any_two_deadline_forms(
    state: str, federal: str, later: bool
) -> None:
    assert later_than(parse_due(state), parse_due(federal), DEFAULT_GRACE) is later


# --- the same event twice, for the whole life of a child's record ------------------------------


def history(start: datetime) -> list[EventBase]:
    return [
        registered("h-1", start, "2011-05-01"),
        event("h-2", "placement.started", {"placement_id": "P-1", "setting": "group_home"}, start),
        opened("h-3", start + HOUR),
        reported("h-4", start + 2 * HOUR),
        event(
            "h-5",
            "missing.located",
            {"episode_id": "E-1", "located_at": (start + 9 * HOUR).isoformat()},
            start + 9 * HOUR,
        ),
        event(
            "h-6",
            "screening.completed",
            {"episode_id": "E-1", "tool": "cse_it", "result": "clear_concern"},
            start + 30 * HOUR,
        ),
        event(
            "h-7",
            "trafficking.identified",
            {"status": "suspected", "type": "sex"},
            start + 31 * HOUR,
        ),
    ]


@ANY_DAY
@given(days_later=st.sampled_from([0, 1, 30, 200, 399, 400, 401, 900, 4000]), reverse=st.booleans())
def test_resending_a_whole_history_at_any_time_changes_nothing(
    engine: Engine, days_later: int, reverse: bool
) -> None:
    run = VirtualRun(engine)
    for e in history(T0):
        run.apply(e)
    run.advance(T0 + 3 * 24 * HOUR)
    key = "demo-agency:C-1"
    before = run.states[key]
    resend_at = T0 + 3 * 24 * HOUR + timedelta(days=days_later)
    state: ChildState | None = engine.evaluate(before, Tick(), resend_at)[0]
    settled = state
    for e in reversed(history(T0)) if reverse else history(T0):
        state, out = engine.evaluate(state, e, resend_at)
        assert out == [], f"{e.event_type} re-sent {days_later} days later emitted {out}"
    assert state is not None and settled is not None
    assert state.open == settled.open and state.pending == settled.pending
    assert state.episodes == settled.episodes and state.risk_tier == settled.risk_tier
    assert (state.date_of_birth, state.placement_starts, state.runs) == (
        settled.date_of_birth,
        settled.placement_starts,
        settled.runs,
    )


def test_digests_are_dropped_after_retention_and_a_resend_still_never_fires(
    engine: Engine,
) -> None:
    run = VirtualRun(engine)
    for e in history(T0):
        run.apply(e)
    state = run.states["demo-agency:C-1"]
    assert state.digests
    later = T0 + RETENTION + timedelta(days=31)
    pruned, _ = engine.evaluate(state, Tick(), later)
    assert pruned is not None and pruned.digests == {}
    del pruned.episodes["E-1"]  # as if dropped among many closed episodes
    new, out = engine.evaluate(pruned, opened("h-3", T0 + HOUR), later)
    assert out == [] and new is not None and "E-1" not in new.episodes


def test_an_open_episode_keeps_its_digests_however_long_it_lasts(engine: Engine) -> None:
    state, _ = engine.evaluate(None, opened("o", T0), T0)
    much_later = T0 + 3 * RETENTION
    state, _ = engine.evaluate(state, Tick(), much_later)
    assert state is not None and "e:E-1" in state.digests
    again, out = engine.evaluate(state, opened("o", T0), much_later)
    assert again is state and out == []


# --- late, out of order, closed ----------------------------------------------------------------


def test_late_event_deadlines_count_from_occurred_at_and_may_be_overdue_at_once(
    engine: Engine,
) -> None:
    """The agency learned 30 h ago and tells us now: the 24 h duties are already overdue."""
    _, out = engine.evaluate(None, opened("o", T0, state="OH"), T0 + 30 * HOUR)
    fired = rules_of(out)
    assert fired["federal.report-ncmec"].due_at == T0 + 24 * HOUR
    assert "federal.report-ncmec.overdue" in fired


def test_a_report_before_its_episode_opens_discharges_the_duty_in_advance(
    engine: Engine,
) -> None:
    state, _ = engine.evaluate(None, reported("le", T0 + HOUR), T0 + HOUR)
    _, out = engine.evaluate(state, opened("o", T0), T0 + 2 * HOUR)
    assert "federal.report-law-enforcement" not in rules_of(out)
    assert "federal.report-ncmec" in rules_of(out)


def test_an_event_for_a_closed_episode_still_discharges_its_duty(engine: Engine) -> None:
    run = VirtualRun(engine)
    run.apply(opened("o", T0))
    run.apply(
        event(
            "l",
            "missing.located",
            {"episode_id": "E-1", "located_at": (T0 + HOUR).isoformat()},
            T0 + HOUR,
        )
    )
    out = run.apply(reported("le", T0 + 4 * HOUR))
    resolved = {e.rule_id: e.evidence.get("on_time") for e in out if e.status == "resolved"}
    assert resolved["federal.report-law-enforcement"] is False


def test_a_profile_that_arrives_late_does_not_set_a_newer_one_back(engine: Engine) -> None:
    newer = event("u", "child.updated", {"date_of_birth": "2012-01-01", "sex": "female"}, T0 + HOUR)
    state, _ = engine.evaluate(None, newer, T0 + HOUR)
    state, _ = engine.evaluate(state, registered("r", T0, "2011-05-01"), T0 + 2 * HOUR)
    assert state is not None and state.date_of_birth == date(2012, 1, 1)


# --- state written by the previous release -----------------------------------------------------


PREVIOUS_START = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)


def previous_release_placement() -> EventBase:
    """prev-2 exactly as the previous release applied it (its digest is in the snapshot)."""
    return event(
        "prev-2",
        "placement.started",
        {"placement_id": "P-1", "setting": "group_home"},
        PREVIOUS_START + timedelta(minutes=5),
        state="TX",
        county="Harris",
        child="C-prev",
    )


def test_state_the_previous_release_wrote_loads_and_takes_the_next_event(
    engine: Engine,
) -> None:
    """tests/unit/data/state-previous-release.json was written by the release before state v2
    (commit 8f536fb) for a Texas child: registered, placed, missing (E-1, with a description),
    reported to law enforcement, court notified, then 30 h of clock; event ids prev-1..prev-5."""
    raw = (ROOT / "tests" / "unit" / "data" / "state-previous-release.json").read_bytes()
    state = ChildState.from_bytes(raw)
    assert state.v == STATE_VERSION and state.partition == 3
    assert sum(len(b.ids) for b in state.digests.values()) == 5
    assert ChildState.from_bytes(state.to_bytes()) == state
    start = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)
    now = start + 31 * HOUR
    resent = previous_release_placement()
    again, out = engine.evaluate(state, resent, now)
    assert again is state and out == []  # the old digest still de-duplicates
    ncmec = event(
        "next-1",
        "missing.ncmec_reported",
        {"episode_id": "E-1", "ncmec_case_number": "N-1"},
        now,
        state="TX",
        county="Harris",
        child="C-prev",
    )
    new, out = engine.evaluate(state, ncmec, now)
    assert new is not None
    assert ("federal.report-ncmec", "resolved") in {(e.rule_id, e.status) for e in out}


def test_state_from_a_newer_release_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="newer than this release"):
        ChildState.from_bytes(b'{"v": 99, "agency_id": "a", "child_id": "c", "state": "MO"}')


def test_the_previous_releases_ids_are_kept_while_its_episode_is_open(engine: Engine) -> None:
    """The upgraded state's ids have no episode of their own: they are kept as long as any
    episode is open, however long, so a re-sent event of that episode is still recognised."""
    raw = (ROOT / "tests" / "unit" / "data" / "state-previous-release.json").read_bytes()
    state = ChildState.from_bytes(raw)
    start = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)
    much_later = start + RETENTION + 30 * timedelta(days=1)
    ticked, _ = engine.evaluate(state, Tick(), much_later)
    assert ticked is not None and "legacy" in ticked.digests
    resent = previous_release_placement()
    again, out = engine.evaluate(ticked, resent, much_later)
    assert again is ticked and out == []


def test_no_time_at_all_is_not_a_deadline() -> None:
    for text in ("0d", "0h", "0m"):
        with pytest.raises(ValueError, match="no time at all"):
            parse_due(text)


def test_counties_that_keep_their_seats_zone() -> None:
    assert zone_name("FL", "Gulf") == "America/New_York"  # Port St. Joe
    assert zone_name("FL", "Bay County") == "America/Chicago"
    assert zone_name("ID", "Idaho County") == "America/Los_Angeles"  # Grangeville
