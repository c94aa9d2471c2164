"""The report's measures on a hand-built caseload with known answers (docs/report.md).

Agency `kx` has children in three counties and two time zones: Jefferson County, Kentucky
(Eastern), Warren County, Kentucky (Central), Franklin County, Ohio (Eastern). Kentucky's
law-enforcement deadline is 12 h, Ohio's 24 h; NCMEC is 24 h in both; return screening and
debrief 72 h; a trafficking report 24 h. The agency's clock is Eastern: March 2026 is
2026-03-01T05:00Z (EST) to 2026-04-01T04:00Z (EDT). The report date is 2026-04-01T12:00Z.

Ten episodes opened in March (A1-A10): law enforcement told on time in six (two exactly at the
deadline), late in three (by 2 h 30 min, 5 h and 48 h), never in one. Around them: B0 closed
before March, B1 open at its start and closed in it, B2 open throughout, B3 opened on 1 April
00:30 Eastern (after the period), A7 opened on 28 February 23:30 Central (in March on the
agency's clock), A9 opened on 31 March 22:30 Central (1 April in UTC, when its child turned 18
on the UTC date but not on Kentucky's), A10 returned on 1 April (after the period).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.events import EventBase, parse_event_obj
from services.report.facts import (
    LAW_ENFORCEMENT,
    NCMEC,
    Duty,
    Facts,
    child_key,
    facts_from_events,
)
from services.report.measures import Report, compute, duty_status, median, percentile
from services.rules.core import Engine

AGENCY = "kx"
EASTERN = ZoneInfo("America/New_York")
AS_OF = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
J, W, F = ("KY", "Jefferson"), ("KY", "Warren"), ("OH", "Franklin")
H = timedelta(hours=1)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Caseload:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def ev(
        self, child: str, where: tuple[str, str], kind: str, at: datetime, **payload: Any
    ) -> None:
        self.events.append(
            {
                "event_id": f"{child}-{len(self.events)}",
                "event_type": kind,
                "schema_version": 1,
                "agency_id": AGENCY,
                "child_id": child,
                "occurred_at": at.isoformat(),
                "jurisdiction": {"state": where[0], "county": where[1]},
                "payload": payload,
            }
        )

    def child(
        self, child: str, where: tuple[str, str], dob: str | None, sex: str, setting: str | None
    ) -> None:
        if dob is not None:
            self.ev(
                child, where, "child.registered", t("2025-06-01T00:00"), date_of_birth=dob, sex=sex
            )
        if setting is not None:
            self.ev(
                child,
                where,
                "placement.started",
                t("2025-06-01T00:05"),
                placement_id=f"P-{child}",
                setting=setting,
            )

    def episode(
        self,
        child: str,
        ep: str,
        where: tuple[str, str],
        last_seen: datetime,
        opened: datetime,
        *,
        le: timedelta | None,
        ncmec: timedelta | None,
        located: datetime | None = None,
        located_known: datetime | None = None,
        screened: tuple[timedelta, str] | None = None,
        debrief: timedelta | None = None,
        staffing: bool = True,
    ) -> None:
        """Times of the reports and the return duties count from their clocks' starts."""
        self.ev(
            child,
            where,
            "missing.opened",
            opened,
            episode_id=ep,
            last_seen_at=last_seen.isoformat(),
            circumstances="runaway",
            description={"name": f"Name of {child}"},
        )
        if staffing:
            self.ev(
                child,
                where,
                "missing.staffing_held",
                opened + H / 2,
                episode_id=ep,
                level="supervisor",
            )
        if le is not None:
            self.ev(
                child,
                where,
                "missing.law_enforcement_reported",
                opened + le,
                episode_id=ep,
                le_agency="PD",
                report_number=f"R-{child}-{ep}",
                ncic_entry_confirmed=True,
            )
        if ncmec is not None:
            self.ev(
                child,
                where,
                "missing.ncmec_reported",
                opened + ncmec,
                episode_id=ep,
                ncmec_case_number=f"N-{ep}",
            )
        if located is None:
            return
        known = located_known or located + H
        self.ev(
            child, where, "missing.located", known, episode_id=ep, located_at=located.isoformat()
        )
        if screened is not None:
            self.ev(
                child,
                where,
                "screening.completed",
                known + screened[0],
                episode_id=ep,
                tool="cse_it",
                result=screened[1],
            )
        if debrief is not None:
            self.ev(child, where, "return.debrief_completed", known + debrief, episode_id=ep)

    def parsed(self) -> list[EventBase]:
        now = datetime(2027, 1, 1, tzinfo=UTC)
        return [parse_event_obj(e, now=now) for e in self.events]


def caseload() -> Caseload:
    c = Caseload()
    c.child("C1", J, "2015-06-01", "female", "group_home")  # 10 at A1
    c.child("C2", J, "2012-09-15", "female", "group_home")  # 13
    c.child("C3", W, "2011-12-01", "male", "group_home")  # 14
    c.child("C4", W, "2010-07-01", "male", "institution")  # 15
    c.child("C5", F, "2009-08-20", "female", "foster_family_nonrelative")  # 16
    c.child("C6", J, "2008-11-11", "male", "foster_family_nonrelative")  # 17
    c.child("C7", W, "2008-04-01", "female", "foster_family_nonrelative")  # 17, 18 on 1 April
    c.child("C8", F, None, "unknown", "foster_family_nonrelative")  # no profile
    c.child("C10", J, "2013-05-05", "male", None)  # 12, no placement
    c.child("C11", J, "2010-01-01", "female", "group_home")
    c.child("C12", F, "2009-01-01", "male", "group_home")
    c.child("C13", J, "2010-02-02", "male", "group_home")

    # Before the period: C2's first run (a repeat run in 12 months with A2).
    c.episode(
        "C2", "B0", J, t("2026-01-10T10:00"), t("2026-01-10T11:00"), le=H, ncmec=H,
        located=t("2026-01-12T10:00"), screened=(24 * H, "no_concern"), debrief=24 * H,
    )  # fmt: skip
    c.episode(
        "C11", "B1", J, t("2026-02-20T10:00"), t("2026-02-20T11:00"), le=H, ncmec=H,
        located=t("2026-03-03T10:00"), screened=(24 * H, "no_concern"), debrief=48 * H,
    )  # fmt: skip
    c.episode("C12", "B2", F, t("2026-02-25T14:00"), t("2026-02-25T15:00"), le=H, ncmec=H)
    c.ev("C12", F, "trafficking.identified", t("2026-02-26T12:00"), status="suspected", type="sex")
    c.ev(
        "C12",
        F,
        "trafficking.law_enforcement_reported",
        t("2026-02-26T20:00"),
        report_number="T-12",
    )

    # March.
    c.episode(
        "C1", "A1", J, t("2026-03-02T10:00"), t("2026-03-02T11:00"), le=H, ncmec=H + 50 * H / 60,
        located=t("2026-03-04T10:00"), screened=(24 * H, "no_concern"), debrief=70 * H,
    )  # fmt: skip
    c.episode(
        "C2", "A2", J, t("2026-03-05T08:00"), t("2026-03-05T09:00"), le=12 * H, ncmec=27 * H,
        located=t("2026-03-06T08:00"), screened=(72 * H, "possible_concern"), debrief=80 * H,
    )  # fmt: skip
    c.episode(
        "C3", "A3", W, t("2026-03-08T03:00"), t("2026-03-08T04:00"), le=H / 2, ncmec=None,
        located=t("2026-03-08T13:00"), screened=(100 * H, "clear_concern"), debrief=None,
    )  # fmt: skip
    c.ev(
        "C3", W, "trafficking.law_enforcement_reported", t("2026-03-13T04:00"), report_number="T-3"
    )
    c.episode(
        "C4", "A4", W, t("2026-03-10T12:00"), t("2026-03-10T13:00"), le=14.5 * H, ncmec=24 * H,
        located=t("2026-03-14T16:00"),
    )  # fmt: skip
    c.episode(
        "C5", "A5", F, t("2026-03-12T20:00"), t("2026-03-12T21:00"), le=29 * H, ncmec=H,
        staffing=False,
    )  # fmt: skip
    c.ev("C5", F, "trafficking.identified", t("2026-03-15T12:00"), status="suspected", type="sex")
    c.ev(
        "C5", F, "trafficking.law_enforcement_reported", t("2026-03-16T12:00"), report_number="T-5"
    )
    c.episode("C6", "A6", J, t("2026-03-14T14:00"), t("2026-03-14T15:00"), le=None, ncmec=None)
    c.episode(
        "C7", "A7", W, t("2026-03-01T04:30"), t("2026-03-01T05:30"), le=11 * H, ncmec=10 * H,
        located=t("2026-03-01T09:30"), located_known=t("2026-03-01T10:00"),
        screened=(24 * H, "no_concern"), debrief=48 * H,
    )  # fmt: skip
    c.ev(
        "C7", W, "placement.started", t("2026-03-01T12:00"), placement_id="P-C7-2",
        setting="foster_family_relative",
    )  # fmt: skip
    c.ev("C7", W, "trafficking.identified", t("2026-03-15T06:00"), status="confirmed", type="sex")
    c.ev(
        "C7", W, "trafficking.law_enforcement_reported", t("2026-03-16T12:00"), report_number="T-7"
    )
    c.episode(
        "C8", "A8", F, t("2026-03-29T18:00"), t("2026-03-29T19:00"), le=24 * H, ncmec=30 * H,
        located=t("2026-03-31T00:00"), located_known=t("2026-03-31T20:00"),
    )  # fmt: skip
    c.episode("C7", "A9", W, t("2026-04-01T02:30"), t("2026-04-01T03:30"), le=H, ncmec=None)
    c.episode(
        "C10", "A10", J, t("2026-03-20T10:00"), t("2026-03-20T11:00"), le=60 * H, ncmec=20 * H,
        located=t("2026-04-01T05:00"), located_known=t("2026-04-01T06:00"),
    )  # fmt: skip

    # After the period.
    c.episode("C13", "B3", J, t("2026-04-01T03:30"), t("2026-04-01T04:30"), le=None, ncmec=None)
    # After the report date: unknown to it.
    c.ev("C6", J, "missing.law_enforcement_reported", t("2026-04-02T00:00"), episode_id="A6",
         le_agency="PD", report_number="R-late", ncic_entry_confirmed=True)  # fmt: skip
    return c


@pytest.fixture(scope="module")
def facts(engine: Engine) -> Facts:
    return facts_from_events(caseload().parsed(), engine, AS_OF)


@pytest.fixture(scope="module")
def report(facts: Facts) -> Report:
    return compute(facts, AGENCY, *MARCH, AS_OF, EASTERN)


def row(
    report: Report, measure: str, categories: tuple[str, ...], scope: str = "all"
) -> dict[str, int]:
    return {c: report.count(measure, c, scope) for c in categories}


STATUSES = ("on_time", "late", "overdue", "not_yet_due")
EPISODES = ("open_at_start", "opened", "active", "closed", "open_at_end")
JEFF, WARREN, FRANKLIN = "KY/Jefferson", "KY/Warren", "OH/Franklin"


def test_the_period_is_the_agencys_local_days(report: Report) -> None:
    assert report.start == t("2026-03-01T05:00")
    assert report.end == t("2026-04-01T04:00")


def test_episodes_spanning_the_period_edges(report: Report) -> None:
    assert row(report, "episodes", EPISODES) == {
        "open_at_start": 2,  # B1 (closed in March), B2 (still open); not B0 (closed in January)
        "opened": 10,  # A1-A10: A7 at 05:30Z is 00:30 Eastern on 1 March; not B3
        "active": 12,
        "closed": 7,  # A1 A2 A3 A4 A7 A8 B1; not A10 (its return recorded 1 April)
        "open_at_end": 5,  # A5 A6 A9 A10 B2
    }
    assert row(report, "episodes", EPISODES, JEFF) == {
        "open_at_start": 1, "opened": 4, "active": 5, "closed": 3, "open_at_end": 2,
    }  # fmt: skip
    assert row(report, "episodes", EPISODES, WARREN) == {
        "open_at_start": 0, "opened": 4, "active": 4, "closed": 3, "open_at_end": 1,
    }  # fmt: skip
    assert row(report, "episodes", EPISODES, FRANKLIN) == {
        "open_at_start": 1, "opened": 2, "active": 3, "closed": 1, "open_at_end": 2,
    }  # fmt: skip


def test_on_the_central_clock_the_edges_move(facts: Facts) -> None:
    # March on Chicago's clock starts at 06:00Z: A7 (05:30Z) was open at its start; it ends at
    # 05:00Z on 1 April: B3 (04:30Z) opened in it.
    central = compute(facts, AGENCY, *MARCH, AS_OF, ZoneInfo("America/Chicago"))
    assert row(central, "episodes", EPISODES) == {
        "open_at_start": 3, "opened": 10, "active": 13, "closed": 7, "open_at_end": 6,
    }  # fmt: skip


def test_law_enforcement_reports(report: Report) -> None:
    assert row(report, "law_enforcement", STATUSES) == {
        "on_time": 6,  # A1 A2 (at exactly 12 h) A3 A7 A8 (at exactly 24 h, Ohio) A9
        "late": 3,  # A4 by 2 h 30 min, A5 by 5 h, A10 by 48 h
        "overdue": 1,  # A6: reported on 2 April, after the report date
        "not_yet_due": 0,
    }
    assert row(report, "law_enforcement", STATUSES, JEFF) == {
        "on_time": 2, "late": 1, "overdue": 1, "not_yet_due": 0,
    }  # fmt: skip
    assert row(report, "law_enforcement", STATUSES, WARREN) == {
        "on_time": 3, "late": 1, "overdue": 0, "not_yet_due": 0,
    }  # fmt: skip
    assert row(report, "law_enforcement", STATUSES, FRANKLIN) == {
        "on_time": 1, "late": 1, "overdue": 0, "not_yet_due": 0,
    }  # fmt: skip
    # 0.5 1 1 11 12 14.5 24 29 60 hours
    stat = report.stat("times", "law_enforcement")
    assert (stat.n, stat.median, stat.p90) == (9, 12 * H, 60 * H)


def test_ncmec_reports(report: Report) -> None:
    assert row(report, "ncmec", STATUSES) == {
        "on_time": 5,  # A1 A4 (exactly 24 h) A5 A7 A10
        "late": 2,  # A2 by 3 h, A8 by 6 h
        "overdue": 2,  # A3 A6
        "not_yet_due": 1,  # A9: due 2 April 03:30Z
    }
    assert row(report, "ncmec", STATUSES, WARREN) == {
        "on_time": 2, "late": 0, "overdue": 1, "not_yet_due": 1,
    }  # fmt: skip
    # 1 1.83 10 20 24 27 30 hours
    stat = report.stat("times", "ncmec")
    assert (stat.n, stat.median, stat.p90) == (7, 20 * H, 30 * H)


def test_return_screening_debrief_and_results(report: Report) -> None:
    assert row(report, "return_screening", STATUSES) == {
        "on_time": 4,  # A1 A2 (exactly 72 h) A7 B1
        "late": 1,  # A3 by 28 h
        "overdue": 1,  # A4
        "not_yet_due": 1,  # A8: returned 31 March 20:00Z
    }
    assert report.count("return_screening", "done") == 5
    assert row(report, "screening_result", ("no_concern", "possible_concern", "clear_concern")) == {
        "no_concern": 3, "possible_concern": 1, "clear_concern": 1,
    }  # fmt: skip
    assert row(report, "screening_result", ("no_concern", "clear_concern"), WARREN) == {
        "no_concern": 1, "clear_concern": 1,
    }  # fmt: skip
    assert row(report, "return_debrief", STATUSES) == {
        "on_time": 3,  # A1 (70 h) A7 B1
        "late": 1,  # A2 by 8 h
        "overdue": 2,  # A3 A4
        "not_yet_due": 1,  # A8
    }
    # 5 10 24 30 48 100 264 hours from last seen to located, for the episodes closed in March
    stat = report.stat("times", "duration")
    assert (stat.n, stat.median, stat.p90) == (7, 30 * H, 264 * H)
    jefferson = report.stat("times", "duration", JEFF)
    assert (jefferson.n, jefferson.median, jefferson.p90) == (3, 48 * H, 264 * H)


def test_trafficking_identified_and_reported(report: Report) -> None:
    # C12's (February) is before the period.
    assert row(report, "trafficking_identified", ("suspected", "confirmed", "total")) == {
        "suspected": 1, "confirmed": 1, "total": 2,
    }  # fmt: skip
    assert report.count("trafficking_identified", "suspected", FRANKLIN) == 1
    # C5 reported at exactly 24 h, C3's clear concern 10 h after the screening; C7 30 h after.
    assert row(report, "trafficking_report", (*STATUSES, "total")) == {
        "on_time": 2, "late": 1, "overdue": 0, "not_yet_due": 0, "total": 3,
    }  # fmt: skip
    assert row(report, "trafficking_report", ("on_time", "late"), WARREN) == {
        "on_time": 1, "late": 1,
    }  # fmt: skip


def test_who_runs(report: Report) -> None:
    # Nine children ran in March; C2 (January and March) and C7 (A7 and A9) ran again within a
    # year.
    assert row(report, "children", ("repeat", "once", "ran")) == {"repeat": 2, "once": 7, "ran": 9}
    settings = {
        "group_home": 3, "institution": 1, "foster_family_nonrelative": 4,
        "foster_family_relative": 1, "none": 1,
    }  # fmt: skip
    assert {
        k: v for k, v in row(report, "runs_by_setting", tuple(settings) + ("other",)).items() if v
    } == settings
    # A9: 31 March in Kentucky's Central time, 17; on the UTC date (1 April) C7 would be 18.
    assert row(report, "runs_by_age", ("0-11", "12-14", "15-17", "18+", "unknown")) == {
        "0-11": 1, "12-14": 3, "15-17": 5, "18+": 0, "unknown": 1,
    }  # fmt: skip
    assert row(report, "runs_by_sex", ("female", "male", "other", "unknown")) == {
        "female": 5, "male": 4, "other": 0, "unknown": 1,
    }  # fmt: skip


def test_duties_overdue_at_the_report_date_by_rule(report: Report) -> None:
    rules = (
        "federal.report-law-enforcement",  # A6; B3's is due at 16:30Z
        "federal.report-ncmec",  # A3 A6
        "federal.return-screening",  # A4
        "federal.return-debrief",  # A3 A4
        "federal.trafficking-report",
        "policy.supervisor-staffing",  # A5: the only episode without a staffing
    )
    assert row(report, "overdue_now", (*rules, "total")) == {
        rules[0]: 1, rules[1]: 2, rules[2]: 1, rules[3]: 2, rules[4]: 0, rules[5]: 1, "total": 7,
    }  # fmt: skip
    assert {r for (m, r, _) in report.counts if m == "overdue_now"} == {*rules, "total"}
    assert report.count("overdue_now", "total", WARREN) == 4
    assert report.count("overdue_now", "policy.supervisor-staffing", FRANKLIN) == 1


def test_every_row_adds_up(report: Report) -> None:
    for rel in report.relations:
        assert report.counts[rel.total] == sum(report.counts[p] for p in rel.parts), rel


def test_facts_hold_codes_and_the_engines_deadlines(facts: Facts) -> None:
    by_opening = {e.opened_at: e for e in facts.episodes}
    a2 = by_opening[t("2026-03-05T09:00")]
    assert a2.law_enforcement == Duty(
        LAW_ENFORCEMENT, a2.opened_at, t("2026-03-05T21:00"), t("2026-03-05T21:00")
    )
    assert a2.ncmec.due_at == t("2026-03-06T09:00")
    a8 = by_opening[t("2026-03-29T19:00")]
    assert (a8.law_enforcement.due_at, a8.age_band, a8.sex) == (
        t("2026-03-30T19:00"),
        "unknown",
        "unknown",
    )
    a9 = by_opening[t("2026-04-01T03:30")]
    assert (a9.age_band, a9.setting, a9.county) == ("15-17", "foster_family_relative", "Warren")
    assert a9.child_key == child_key(AGENCY, "C7") != "C7"
    assert all(e.agency_id == AGENCY for e in facts.episodes)


def test_a_report_made_before_the_episode_was_recorded_is_on_time(engine: Engine) -> None:
    # The engine never opens the duty; the report still counts, done before it began.
    c = Caseload()
    c.ev("C1", J, "missing.law_enforcement_reported", t("2026-03-02T10:00"), episode_id="E",
         le_agency="PD", report_number="R", ncic_entry_confirmed=True)  # fmt: skip
    c.episode("C1", "E", J, t("2026-03-02T09:00"), t("2026-03-02T11:00"), le=None, ncmec=3 * H)
    facts = facts_from_events(c.parsed(), engine, AS_OF)
    (episode,) = facts.episodes
    assert episode.law_enforcement == Duty(
        LAW_ENFORCEMENT, episode.opened_at, None, t("2026-03-02T10:00")
    )
    report = compute(facts, AGENCY, *MARCH, AS_OF, EASTERN)
    assert row(report, "law_enforcement", ("on_time", "late")) == {"on_time": 1, "late": 0}
    assert report.stat("times", "law_enforcement").median == timedelta(0)
    assert episode.ncmec.rule_id == NCMEC


DUE = t("2026-03-02T12:00")


@pytest.mark.parametrize(
    ("due", "done", "status"),
    [
        (DUE, DUE, "on_time"),
        (DUE, DUE + timedelta(microseconds=1), "late"),
        (DUE, AS_OF, "late"),
        (DUE, AS_OF + timedelta(microseconds=1), "overdue"),
        (DUE, None, "overdue"),
        (AS_OF, None, "not_yet_due"),
        (AS_OF - timedelta(microseconds=1), None, "overdue"),
        (None, DUE, "on_time"),
        (None, None, "not_yet_due"),
    ],
)
def test_a_duty_at_the_report_date(
    due: datetime | None, done: datetime | None, status: str
) -> None:
    assert duty_status(Duty("r", DUE - H, due, done), AS_OF) == status


def test_median_and_nearest_rank_percentile() -> None:
    values = [timedelta(hours=h) for h in (4, 1, 3, 2)]
    assert median(values) == timedelta(hours=2.5)
    assert percentile(values, 90) == timedelta(hours=4)
    assert percentile(values, 50) == timedelta(hours=2)
    assert median([]) is None and percentile([], 90) is None


def test_the_report_refuses_what_it_cannot_answer(facts: Facts) -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        compute(facts, AGENCY, date(2026, 3, 2), date(2026, 3, 1), AS_OF, EASTERN)
    with pytest.raises(ValueError, match="before the period starts"):
        compute(facts, AGENCY, date(2026, 5, 1), date(2026, 5, 31), AS_OF, EASTERN)
    with pytest.raises(ValueError, match="another instant"):
        compute(facts, AGENCY, *MARCH, AS_OF + H, EASTERN)


def test_another_agency_sees_nothing_of_these(facts: Facts) -> None:
    other = compute(facts, "someone-else", *MARCH, AS_OF, EASTERN)
    assert set(other.counts.values()) == {0}
