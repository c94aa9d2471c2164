"""The console's queries on an in-memory SQLite read model: agency first, always; each an
index range of the agency, never a scan of a table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from services.console.db import make_engine, migrate
from services.console.models import (
    AckRow,
    Child,
    ChildEventRow,
    Episode,
    EscalationRow,
    NoteRow,
    NotificationRow,
    SilenceRow,
)
from services.console.queries import (
    Matcher,
    NowFilters,
    child_timeline,
    deliveries,
    escalation,
    open_count,
    open_counties,
    open_escalations,
    open_rules,
    silences,
)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
MINE, OTHER = "mo-jackson", "tx-el-paso"


def esc(escalation_id: str, agency: str = MINE, **kw: Any) -> EscalationRow:
    base: dict[str, Any] = {
        "escalation_id": escalation_id,
        "agency_id": agency,
        "child_id": f"C-{escalation_id}",
        "rule_id": "federal.report-ncmec",
        "severity": "high",
        "status": "firing",
        "action": "Report the missing child to NCMEC",
        "state": "MO",
        "county": "Jackson",
        "caseworker_id": "W-1",
        "supervisor_id": "S-1",
        "due_at": T0 + timedelta(hours=2),
        "fired_at": T0,
    }
    return EscalationRow(**{**base, **kw})


def note(escalation_id: str, status: str, agency: str | None = MINE, n: int = 1) -> NotificationRow:
    return NotificationRow(
        notification_id=f"{escalation_id}-n{n}",
        status=status,
        attempt=1,
        escalation_id=escalation_id,
        receiver="caseworker",
        recipient_class="caseworker",
        channel="email",
        step="0",
        escalation_status="firing",
        at=T0 + timedelta(minutes=n),
        reason=None if status == "delivered" else "smtp_5xx",
        agency_id=agency,
    )


def child_event(
    event_id: str, minutes: int, child: str = "C-soon", agency: str = MINE, **kw: Any
) -> ChildEventRow:
    base: dict[str, Any] = {
        "agency_id": agency,
        "event_id": event_id,
        "child_id": child,
        "episode_id": "E-1",
        "event_type": "missing.party_notified",
        "occurred_at": T0 + timedelta(minutes=minutes),
        "detail": None,
    }
    return ChildEventRow(**{**base, **kw})


def silence(silence_id: str, agency: str = MINE, **kw: Any) -> SilenceRow:
    base: dict[str, Any] = {
        "silence_id": silence_id,
        "agency_id": agency,
        "kind": "silence",
        "receiver": None,
        "matchers": json.dumps([{"label": "rule_id", "op": "=", "value": "risk.tier-changed"}]),
        "starts_at": T0 - timedelta(hours=1),
        "ends_at": T0 + timedelta(hours=3),
        "reason": "policy update",
        "created_by": "S-1",
        "created_at": T0 - timedelta(hours=2),
    }
    return SilenceRow(**{**base, **kw})


def timeline_rows() -> list[Any]:
    """C-soon: a child row, two episodes, three events, escalations `soon` and a resolved one;
    C-gone: no row, one escalation; the other agency's C-soon has rows of its own."""
    return [
        Child(agency_id=MINE, child_id="C-soon", state="MO", county="Jackson", caseworker_id="W-1"),
        Child(agency_id=OTHER, child_id="C-soon", state="TX", county="El Paso"),
        Child(agency_id=OTHER, child_id="C-theirs", state="TX"),
        Episode(
            agency_id=MINE,
            episode_id="E-2",
            child_id="C-soon",
            opened_at=T0 - timedelta(hours=1),
        ),
        Episode(
            agency_id=MINE,
            episode_id="E-1",
            child_id="C-soon",
            opened_at=T0 - timedelta(days=30),
            closed_at=T0 - timedelta(days=29),
        ),
        Episode(agency_id=OTHER, episode_id="E-9", child_id="C-soon", opened_at=T0),
        child_event("ev-3", 30, detail="guardian_ad_litem"),
        child_event("ev-1", -60, event_type="missing.opened", episode_id="E-2"),
        child_event("ev-2", 10, event_type="screening.completed", detail="possible_concern"),
        child_event("ev-9", 5, agency=OTHER),
        esc(
            "soon-before",
            child_id="C-soon",
            status="resolved",
            fired_at=None,
            resolved_at=T0 - timedelta(days=29),
        ),
        esc(
            "gone",
            child_id="C-gone",
            status="resolved",
            fired_at=T0 - timedelta(days=2),
            resolved_at=T0 - timedelta(days=1),
        ),
        esc("theirs-child", agency=OTHER, child_id="C-soon"),
    ]


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = make_engine("sqlite://")
    migrate(engine)
    with Session(engine) as session:
        session.add_all(
            [
                esc("soon", due_at=T0 + timedelta(hours=1)),
                esc("later", due_at=T0 + timedelta(hours=5), severity="critical"),
                esc("no-deadline", due_at=None, rule_id="risk.tier-changed", county="Clay"),
                esc("theirs", agency=OTHER, due_at=T0 + timedelta(minutes=5)),
                esc("done", status="resolved"),
                esc("w2s", due_at=T0 + timedelta(hours=3), caseworker_id="W-2"),
                note("soon", "delivered", n=1),
                note("soon", "delivered", n=2),
                note("later", "failed", n=3),
                note("later", "dead_lettered", agency=None, n=4),  # an older record
                note("theirs", "failed", agency=OTHER, n=5),
                AckRow(
                    escalation_id="soon",
                    who="S-1",
                    receiver="supervisor",
                    person_id="S-1",
                    person_agency_id=MINE,
                    via="link",
                    stops=True,
                    acked_at=T0 + timedelta(minutes=9),
                ),
                AckRow(
                    escalation_id="later",
                    who="receiver:law-enforcement",
                    receiver="law-enforcement",
                    via="api",
                    stops=False,  # a receipt: stops nothing
                    acked_at=T0 + timedelta(minutes=9),
                ),
                NoteRow(
                    escalation_id="soon",
                    note_id="n-2",
                    person_id="W-1",
                    person_agency_id=MINE,
                    at=T0 + timedelta(minutes=12),
                    note="placement says she called at noon",
                ),
                NoteRow(
                    escalation_id="soon",
                    note_id="n-1",
                    person_id="S-1",
                    person_agency_id=MINE,
                    at=T0 + timedelta(minutes=11),
                    note="called the placement",
                ),
                NoteRow(
                    escalation_id="theirs",
                    note_id="n-3",
                    person_id="X-1",
                    person_agency_id=OTHER,
                    at=T0 + timedelta(minutes=11),
                    note="theirs",
                ),
                *timeline_rows(),
                silence("active-late", ends_at=T0 + timedelta(hours=5)),
                silence("active-soon", ends_at=T0 + timedelta(minutes=30)),
                silence(
                    "pending",
                    kind="maintenance",
                    receiver="agency-webhook",
                    matchers="[]",
                    starts_at=T0 + timedelta(hours=1),
                    ends_at=T0 + timedelta(hours=2),
                    reason=None,
                ),
                silence("ended", ends_at=T0),
                silence("expired", expired_at=T0 - timedelta(minutes=1), expired_by="S-1"),
                silence(  # expired before it started: it never starts
                    "expired-pending",
                    starts_at=T0 + timedelta(hours=1),
                    expired_at=T0 - timedelta(minutes=1),
                ),
                silence(  # an expiry written ahead of time: active until then
                    "expiring",
                    expired_at=T0 + timedelta(minutes=45),
                    ends_at=T0 + timedelta(hours=1),
                ),
                silence("theirs", agency=OTHER),
            ]
        )
        session.commit()
    yield engine
    engine.dispose()


def test_now_lists_only_the_agencys_open_escalations_least_time_left_first(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        rows = open_escalations(session, MINE)
    assert [r.escalation_id for r in rows] == ["soon", "w2s", "later", "no-deadline"]
    by_id = {r.escalation_id: r for r in rows}
    assert (by_id["soon"].told, by_id["soon"].acknowledged) == (2, True)
    assert (by_id["later"].told, by_id["later"].acknowledged) == (0, False)  # a receipt only


def test_now_filters(engine: Engine) -> None:
    with Session(engine) as session:

        def ids(**kw: Any) -> list[str]:
            return [r.escalation_id for r in open_escalations(session, MINE, NowFilters(**kw))]

        assert ids(severity="critical") == ["later"]
        assert ids(rule_id="risk.tier-changed") == ["no-deadline"]
        assert ids(county="Clay") == ["no-deadline"]
        assert ids(mine="W-2") == ["w2s"]
        assert ids(mine="S-1") == ["soon", "w2s", "later", "no-deadline"]
        assert ids(mine="W-9") == []


def test_another_agencys_escalation_is_not_found_like_an_unknown_one(engine: Engine) -> None:
    with Session(engine) as session:
        assert escalation(session, MINE, "theirs") is None
        assert escalation(session, MINE, "no-such-id") is None
        view = escalation(session, OTHER, "theirs")
        assert view is not None and [n.status for n in view.notifications] == ["failed"]
        mine = escalation(session, MINE, "soon")
        assert mine is not None
        assert [n.notification_id for n in mine.notifications] == ["soon-n1", "soon-n2"]
        assert [a.person_id for a in mine.acks] == ["S-1"]


def test_deliveries_are_the_agencys_failures_including_records_without_an_agency(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        assert [n.notification_id for n in deliveries(session, MINE)] == ["later-n4", "later-n3"]
        assert [n.notification_id for n in deliveries(session, OTHER)] == ["theirs-n5"]


def test_the_escalation_page_has_its_notes_oldest_first(engine: Engine) -> None:
    with Session(engine) as session:
        mine = escalation(session, MINE, "soon")
        assert mine is not None
        assert [(n.note_id, n.person_id, n.note) for n in mine.notes] == [
            ("n-1", "S-1", "called the placement"),
            ("n-2", "W-1", "placement says she called at noon"),
        ]
        assert [a.who for a in mine.acks] == ["S-1"]  # a note is no acknowledgement
        later = escalation(session, MINE, "later")
        assert later is not None and later.notes == []


def test_the_evidence_reads_back_as_a_dict(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(
            esc(
                "with-evidence",
                basis="42 USC 671(a)(35)(B)",
                evidence=json.dumps({"on_time": False, "risk_tier": "high", "runs": 3}),
            )
        )
        session.commit()
        view = escalation(session, MINE, "with-evidence")
        assert view is not None and view.row.basis == "42 USC 671(a)(35)(B)"
        assert view.row.evidence_items == {"on_time": False, "risk_tier": "high", "runs": 3}
        older = escalation(session, MINE, "soon")  # projected before 0003: no evidence
        assert older is not None and older.row.evidence_items == {}


def test_a_childs_timeline_is_its_agencys_rows_in_time_order(engine: Engine) -> None:
    with Session(engine) as session:
        timeline = child_timeline(session, MINE, "C-soon")
        assert timeline is not None and timeline.child is not None
        assert (timeline.child.agency_id, timeline.child.state) == (MINE, "MO")
        assert [e.episode_id for e in timeline.episodes] == ["E-1", "E-2"]
        assert [(e.event_id, e.event_type, e.detail) for e in timeline.events] == [
            ("ev-1", "missing.opened", None),
            ("ev-2", "screening.completed", "possible_concern"),
            ("ev-3", "missing.party_notified", "guardian_ad_litem"),
        ]
        assert [e.escalation_id for e in timeline.escalations] == ["soon-before", "soon"]
        newest = child_timeline(session, MINE, "C-soon", limit=2)
        assert newest is not None
        assert [e.event_id for e in newest.events] == ["ev-2", "ev-3"]  # the newest, in order


def test_a_child_named_only_by_an_escalation_has_a_timeline_without_a_row(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        timeline = child_timeline(session, MINE, "C-gone")
        assert timeline is not None
        assert (timeline.child, timeline.episodes, timeline.events) == (None, [], [])
        assert [e.escalation_id for e in timeline.escalations] == ["gone"]


def test_another_agencys_child_is_not_found_like_an_unknown_one(engine: Engine) -> None:
    with Session(engine) as session:
        assert child_timeline(session, MINE, "C-theirs") is None
        assert child_timeline(session, MINE, "C-nobody") is None
        theirs = child_timeline(session, OTHER, "C-soon")  # the same child id, their rows only
        assert theirs is not None and theirs.child is not None
        assert theirs.child.state == "TX"
        assert [e.episode_id for e in theirs.episodes] == ["E-9"]
        assert [e.event_id for e in theirs.events] == ["ev-9"]
        assert [e.escalation_id for e in theirs.escalations] == ["theirs-child"]


def test_silences_active_and_pending_soonest_end_first(engine: Engine) -> None:
    with Session(engine) as session:
        found = silences(session, MINE, T0)
    assert [(s.silence_id, s.state) for s in found] == [
        ("active-soon", "active"),
        ("expiring", "active"),
        ("pending", "pending"),
        ("active-late", "active"),
    ]
    first, window = found[0], found[2]
    assert first.matchers == [Matcher("rule_id", "=", "risk.tier-changed")]
    assert (first.reason, first.created_by, first.kind) == ("policy update", "S-1", "silence")
    assert (window.kind, window.receiver, window.matchers, window.reason) == (
        "maintenance",
        "agency-webhook",
        [],
        None,
    )


def test_silences_are_the_agencys_own(engine: Engine) -> None:
    with Session(engine) as session:
        assert [s.silence_id for s in silences(session, OTHER, T0)] == ["theirs"]
        assert silences(session, "nobody", T0) == []
        later = T0 + timedelta(hours=4)
        assert [s.silence_id for s in silences(session, MINE, later)] == ["active-late"]


def test_every_query_is_an_index_range_never_a_scan(engine: Engine) -> None:
    """What keeps them fast with tens of thousands of open escalations (SQLite's plans; the
    integration test runs them on PostgreSQL)."""
    statements: list[tuple[str, Any]] = []

    def grab(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    with Session(engine) as session:
        open_escalations(session, MINE, NowFilters(mine="W-1"))
        escalation(session, MINE, "soon")
        child_timeline(session, MINE, "C-soon")
        silences(session, MINE, T0)
        deliveries(session, MINE)
        open_count(session, MINE, NowFilters(severity="critical"))
        open_rules(session, MINE)
        open_counties(session, MINE)
        event.remove(engine, "before_cursor_execute", grab)
        assert len(statements) >= 14
        for statement, parameters in statements:
            plan = [
                str(row[-1])
                for row in session.connection().exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                )
            ]
            assert not [step for step in plan if step.startswith("SCAN")], (statement, plan)
