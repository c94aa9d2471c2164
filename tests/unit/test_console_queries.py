"""The console's queries on an in-memory SQLite read model: agency first, always."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.console.db import make_engine, migrate
from services.console.models import AckRow, EscalationRow, NotificationRow
from services.console.queries import NowFilters, deliveries, escalation, open_escalations

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
