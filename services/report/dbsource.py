"""Facts from the console's read model (`carealert report --database URL`): the same Facts the
events file gives (services.report.facts), built from SQL without replaying a single event.

What the read model holds for this (docs/console.md, "Read model", migration 0004): the engine's
escalations with their deadline (`due_at`), their triggering and resolving events and when the
duty was discharged (`discharged_at`); the events as rows with their time, jurisdiction and codes
(a profile's sex, a placement's id and setting, a finding's status, a screening's result); the
episodes with the opening's jurisdiction, last-seen time and when the return was recorded. The
child's date of birth is never stored: the age band at the opening is the one the engine
computed for the duties it opened on the missing.opened event (their `evidence.age`, stored as
`escalations.age_band`).

Every fact is as it stood at `as_of`: only events that occurred by then count (the events
source reads no later ones), a duty done after it is not done, and a duty is overdue at `as_of`
when its overdue step had fired for a deadline before it and no event by then resolved it.

Where the two sources may differ (docs/report.md, "From the console's database"; the first two
tested in tests/unit/test_report_dbsource.py):
- the age band: the engine's at the opening, from the date of birth it knew then; the events
  source uses the date of birth as last recorded by `as_of`. They differ when the date of birth
  was recorded or corrected after the opening; an episode for which the engine opened no duty at
  the opening (every one was discharged first) has "unknown";
- the engine's decisions are the live engine's, which saw events in the order they arrived; the
  events source runs them again in occurred_at order. They differ for events recorded out of
  order that the engine handles differently seen late: a report recorded before the opening it
  answers (even one made after the deadline) means the engine never opened the duty, so the
  database counts it done before it began (on time), the events source by its real deadline;
- an overdue step fires when the rules worker ticks past the deadline (within seconds): a report
  made at that very moment may not count a duty that fell overdue just before.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Engine, String, and_, or_, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from services.common.events import ScreeningResult
from services.console.models import Base
from services.report.facts import (
    AGE_BANDS,
    EPISODE_DUTIES,
    LAW_ENFORCEMENT,
    MEASURED_RULES,
    NCMEC,
    NO_PLACEMENT,
    RETURN_DEBRIEF,
    RETURN_SCREENING,
    SCREENING_RESULTS,
    TRAFFICKING_REPORT,
    TRAFFICKING_STATUSES,
    AgeBand,
    Duty,
    EpisodeFacts,
    Facts,
    Identification,
    OverdueDuty,
    TraffickingReport,
    TraffickingStatus,
    TraffickingTrigger,
    child_key,
)

OVERDUE = ".overdue"  # the engine's overdue step of a rule is the rule id plus this
PROFILE_EVENTS = ("child.registered", "child.updated")
PLACEMENT_STARTED, PLACEMENT_ENDED = "placement.started", "placement.ended"
IDENTIFIED = "trafficking.identified"
OPENED = "missing.opened"
CHUNK = 500  # ids per IN (...): far under SQLite's and PostgreSQL's limits on parameters

_episodes = Base.metadata.tables["episodes"]
_escalations = Base.metadata.tables["escalations"]
_events = Base.metadata.tables["child_events"]
_children_table = Base.metadata.tables["children"]


class ReadModelNotReady(RuntimeError):
    """The read model cannot give a right report: there is none, it is not at the revision the
    report reads, or the agency's rows the report reads were projected before that revision
    (their report columns are empty until `carealert console rebuild` and `project` read the
    topics again). The message names the cause and the remedy, never the database's address."""


def _stale() -> ReadModelNotReady:
    return ReadModelNotReady(
        "the read model holds rows projected before the report's columns existed (migration"
        " 0004): run `carealert console rebuild`, then `carealert console project`, to read the"
        " topics again"
    )


@cache
def head_revision() -> str:
    """The newest migration of the read model (services/console/migrations)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from services.console.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError("the read model has no migrations")
    return head


class _Row(NamedTuple):
    """One measured duty or overdue step, with its triggering and resolving events (the
    resolving one only where it is needed: a return screening's, for its result; a duty found
    not owed, for when)."""

    child_id: str
    episode_id: str | None
    rule_id: str
    status: str
    policy_version: str
    due_at: datetime | None
    resolved_at: datetime | None
    discharged_at: datetime | None
    age_band: str | None
    started_at: datetime
    trigger_type: str
    trigger_code: str | None
    trigger_state: str
    trigger_county: str | None
    resolved_event_at: datetime | None
    resolved_detail: str | None


@dataclass
class _Child:
    """What the events say of one child by `as_of`: its sex as last recorded, its placements."""

    sex: tuple[datetime, str, str] | None = None  # (occurred_at, event_id, sex)
    placements: list[tuple[datetime, str, str, str]] = field(default_factory=list)
    ended: dict[str, datetime] = field(default_factory=dict)


class DatabaseFacts:
    """A FactsSource over the console's read model (SQLite or PostgreSQL). Reads only: it
    never migrates or writes. `facts` raises ReadModelNotReady (see there)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- the read model's state ------------------------------------------------------------

    def check(self) -> None:
        """Raise ReadModelNotReady unless the read model is at the newest revision. (Rows
        projected before it are found as `facts` reads them.)"""
        from services.console.db import current_revision

        head = head_revision()
        found = current_revision(self.engine)
        if found is None:
            raise ReadModelNotReady(
                "the database holds no read model (`carealert console project` creates it)"
            )
        if found != head:
            raise ReadModelNotReady(
                f"the read model is at revision {found}, the report reads {head}:"
                " `carealert console project` brings it there (one older than 0004 is rebuilt"
                " from the topics)"
            )

    def zones(self, agency_id: str) -> set[str]:
        """The IANA zones of the jurisdictions of the agency's events."""
        from services.common.zones import zone_name

        with self.engine.connect() as conn:
            found = conn.execute(
                select(_events.c.state, _events.c.county)
                .where(_events.c.agency_id == agency_id)
                .distinct()
            )
            return {zone_name(state, county) for state, county in found if state}

    # --- facts -------------------------------------------------------------------------------

    def facts(self, agency_id: str, as_of: datetime) -> Facts:
        """The agency's Facts as they stood at `as_of` (module docstring). Raises
        ReadModelNotReady, also when a row it reads was projected before the report's columns
        existed (they are filled in every row projected since: the contract requires them)."""
        self.check()
        with self.engine.connect() as conn:
            rows = _duty_rows(conn, agency_id, as_of)
            children = _children(conn, agency_id, as_of)
            identifications = _identifications(conn, agency_id, as_of)
            episodes = _episode_facts(conn, agency_id, as_of, rows, children)
            overdue = _overdue(conn, agency_id, as_of, rows)
        versions = sorted({r.policy_version for r in rows if r.rule_id in MEASURED_RULES})
        reports = [
            TraffickingReport(
                agency_id=agency_id,
                state=r.trigger_state,
                county=r.trigger_county,
                child_key=child_key(agency_id, r.child_id),
                trigger=_trigger(r),
                duty=Duty(r.rule_id, r.started_at, r.due_at, _done(r, as_of)),
            )
            for r in rows
            if r.rule_id == TRAFFICKING_REPORT
        ]
        reports.sort(key=lambda t: (t.duty.started_at, t.child_key))
        return Facts(
            as_of=as_of,
            episodes=tuple(episodes),
            identifications=tuple(identifications),
            trafficking_reports=tuple(reports),
            overdue=tuple(overdue),
            policy_version=", ".join(versions) or None,
        )


# --- queries -------------------------------------------------------------------------------------


def _duty_rows(conn: Connection, agency_id: str, as_of: datetime) -> list[_Row]:
    """The measured duties started (their triggering event occurred) by `as_of`, and the
    overdue steps for a deadline before `as_of` that may still have been open then (firing,
    found not owed, or discharged after `as_of`)."""
    x, trigger, resolving = _escalations, _events.alias("t"), _events.alias("d")
    # The agency's rule ids (a walk of ix_escalations_agency_rule): the overdue steps' are
    # read by their ids, so both kinds are index ranges, not a pass over every escalation.
    rules = conn.execute(select(x.c.rule_id).where(x.c.agency_id == agency_id).distinct()).scalars()
    overdue_rules = sorted(r for r in rules if r.endswith(OVERDUE))
    query = (
        select(
            x.c.child_id,
            x.c.episode_id,
            x.c.rule_id,
            x.c.status,
            x.c.policy_version,
            _raw(x.c.due_at),
            _raw(x.c.resolved_at),
            _raw(x.c.discharged_at),
            x.c.age_band,
            _raw(trigger.c.occurred_at),
            trigger.c.event_type,
            trigger.c.code,
            trigger.c.state,
            trigger.c.county,
            _raw(resolving.c.occurred_at),
            resolving.c.detail,
        )
        .outerjoin(
            trigger,
            and_(trigger.c.agency_id == x.c.agency_id, trigger.c.event_id == x.c.trigger_event_id),
        )
        .outerjoin(
            resolving,
            and_(
                resolving.c.agency_id == x.c.agency_id,
                resolving.c.event_id == x.c.resolved_by,
                or_(x.c.rule_id == RETURN_SCREENING, x.c.discharged_at.is_(None)),
            ),
        )
        .where(
            x.c.agency_id == agency_id,
            x.c.rule_id.in_((*MEASURED_RULES, *overdue_rules)),
            or_(
                and_(x.c.rule_id.in_(MEASURED_RULES), trigger.c.occurred_at <= as_of),
                and_(
                    x.c.rule_id.in_(overdue_rules),
                    x.c.due_at < as_of,
                    or_(
                        x.c.status == "firing",
                        x.c.discharged_at.is_(None),
                        x.c.discharged_at > as_of,
                    ),
                ),
                # Rows projected before 0004 (no version, no trigger) are read to be refused.
                x.c.policy_version.is_(None),
            ),
        )
    )
    out: list[_Row] = []
    started: dict[str, datetime] = {}  # one event starts several duties: parsed once
    for (
        child_id,
        episode_id,
        rule_id,
        status,
        version,
        due_at,
        resolved_at,
        discharged_at,
        band,
        trigger_at,
        trigger_type,
        trigger_code,
        trigger_state,
        trigger_county,
        resolved_event_at,
        resolved_detail,
    ) in conn.execute(query).all():
        if version is None or trigger_state is None:
            raise _stale()
        at = started.get(trigger_at)
        if at is None:
            at = started[trigger_at] = _at(trigger_at)
        out.append(
            _Row(
                child_id,
                episode_id,
                rule_id,
                status,
                version,
                _instant(due_at),
                _instant(resolved_at),
                _instant(discharged_at),
                band,
                at,
                trigger_type,
                trigger_code,
                trigger_state,
                trigger_county,
                _instant(resolved_event_at),
                resolved_detail,
            )
        )
    return out


def _children(conn: Connection, agency_id: str, as_of: datetime) -> dict[str, _Child]:
    """Each child's sex as last recorded by `as_of` and its placements (their settings)."""
    e = _events.c
    query = select(
        e.child_id, e.event_type, _raw(e.occurred_at), e.event_id, e.state, e.code, e.placement_id
    )
    query = query.where(
        e.agency_id == agency_id,
        e.event_type.in_((*PROFILE_EVENTS, PLACEMENT_STARTED, PLACEMENT_ENDED)),
        e.occurred_at <= as_of,
    )
    children: dict[str, _Child] = defaultdict(_Child)
    for child_id, event_type, raw, event_id, state, code, placement_id in conn.execute(query).all():
        if state is None:
            raise _stale()
        child = children[child_id]
        at = _at(raw)
        if event_type in PROFILE_EVENTS:
            # The engine keeps the newest profile by occurred_at (services.rules.state.fold).
            if code and (child.sex is None or (at, event_id) >= child.sex[:2]):
                child.sex = (at, event_id, code)
        elif event_type == PLACEMENT_STARTED and placement_id and code:
            child.placements.append((at, event_id, placement_id, code))
        elif event_type == PLACEMENT_ENDED and placement_id:
            earlier = child.ended.get(placement_id)
            if earlier is None or at < earlier:
                child.ended[placement_id] = at
    for child in children.values():
        child.placements.sort()
    return children


def _identifications(conn: Connection, agency_id: str, as_of: datetime) -> list[Identification]:
    e = _events.c
    query = select(e.child_id, e.state, e.county, e.code, _raw(e.occurred_at)).where(
        e.agency_id == agency_id, e.event_type == IDENTIFIED, e.occurred_at <= as_of
    )
    out: list[Identification] = []
    for child_id, state, county, code, at in conn.execute(query):
        status = _status(code)
        if state is None or status is None:
            raise _stale()
        out.append(
            Identification(
                agency_id=agency_id,
                state=state,
                county=county,
                child_key=child_key(agency_id, child_id),
                status=status,
                identified_at=_at(at),
            )
        )
    out.sort(key=lambda i: (i.identified_at, i.child_key))
    return out


def _episode_facts(
    conn: Connection,
    agency_id: str,
    as_of: datetime,
    rows: Sequence[_Row],
    children: dict[str, _Child],
) -> list[EpisodeFacts]:
    ep = _episodes.c
    query = select(
        ep.child_id,
        ep.episode_id,
        ep.state,
        ep.county,
        _raw(ep.last_seen_at),
        _raw(ep.opened_at),
        _raw(ep.closed_at),
        _raw(ep.located_event_at),
    ).where(ep.agency_id == agency_id, ep.opened_at.is_not(None), ep.opened_at <= as_of)
    episodes: list[tuple[str, str, str, str | None, datetime, datetime, Any, Any]] = []
    for child_id, episode_id, state, county, seen, opened, closed, learned in conn.execute(
        query
    ).all():
        if state is None or seen is None:
            raise _stale()
        episodes.append(
            (
                child_id,
                episode_id,
                state,
                county,
                _at(seen),
                _at(opened),
                _instant(closed),
                _instant(learned),
            )
        )
    # The duty of each (child, episode, rule): the one that started first.
    duties: dict[tuple[str, str, str], _Row] = {}
    for r in rows:
        if r.rule_id not in EPISODE_DUTIES or r.episode_id is None:
            continue
        key = (r.child_id, r.episode_id, r.rule_id)
        if key not in duties or r.started_at < duties[key].started_at:
            duties[key] = r
    bands = _bands(conn, agency_id, as_of, episodes, duties)
    missing: list[tuple[str, str, str]] = []
    for child_id, episode_id, *_, located_event_at in episodes:
        rules = [LAW_ENFORCEMENT, NCMEC]
        if located_event_at is not None and located_event_at <= as_of:
            rules += [RETURN_SCREENING, RETURN_DEBRIEF]
        missing += [
            (child_id, episode_id, r) for r in rules if (child_id, episode_id, r) not in duties
        ]
    early = _early(conn, agency_id, as_of, missing)

    out: list[EpisodeFacts] = []
    for child_id, episode_id, state, county, last_seen_at, opened_at, closed, learned in episodes:
        returned = learned is not None and learned <= as_of
        episode = (child_id, episode_id)
        le, _ = _duty(duties, early, episode, LAW_ENFORCEMENT, opened_at, as_of)
        ncmec, _ = _duty(duties, early, episode, NCMEC, opened_at, as_of)
        screening = debrief = None
        result: ScreeningResult | None = None
        if returned:
            screening, detail = _duty(duties, early, episode, RETURN_SCREENING, learned, as_of)
            debrief, _ = _duty(duties, early, episode, RETURN_DEBRIEF, learned, as_of)
            result = _result(detail)
        child = children.get(child_id)
        out.append(
            EpisodeFacts(
                agency_id=agency_id,
                state=state,
                county=county,
                child_key=child_key(agency_id, child_id),
                age_band=bands.get((child_id, episode_id), "unknown"),
                sex=child.sex[2] if child is not None and child.sex is not None else "unknown",
                setting=_setting(child, last_seen_at) if child is not None else NO_PLACEMENT,
                last_seen_at=last_seen_at,
                opened_at=opened_at,
                located_at=closed if returned else None,
                closed_at=learned if returned else None,
                law_enforcement=le,
                ncmec=ncmec,
                return_screening=screening,
                return_debrief=debrief,
                screening_result=result,
            )
        )
    out.sort(key=lambda e: (e.opened_at, e.child_key))
    return out


def _bands(
    conn: Connection,
    agency_id: str,
    as_of: datetime,
    episodes: Sequence[Any],
    duties: dict[tuple[str, str, str], _Row],
) -> dict[tuple[str, str], AgeBand]:
    """Each episode's age band at its opening: the engine's, on a duty it opened on the
    missing.opened event (law enforcement's or NCMEC's; else any other escalation that event
    started, such as the missing-child alert)."""
    bands: dict[tuple[str, str], AgeBand] = {}
    for (child_id, episode_id, rule_id), r in duties.items():
        if rule_id in (LAW_ENFORCEMENT, NCMEC) and r.trigger_type == OPENED:
            band = _band(r.age_band)
            if band is not None:
                bands[(child_id, episode_id)] = band
    left = [(c, e) for c, e, *_ in episodes if (c, e) not in bands]
    x, trigger = _escalations, _events.alias("t")
    for chunk in _chunks(sorted({c for c, _ in left})):
        query = (
            select(trigger.c.child_id, trigger.c.episode_id, x.c.age_band)
            .join(
                trigger,
                and_(
                    trigger.c.agency_id == x.c.agency_id,
                    trigger.c.event_id == x.c.trigger_event_id,
                ),
            )
            .where(
                x.c.agency_id == agency_id,
                x.c.child_id.in_(chunk),
                x.c.age_band.is_not(None),
                trigger.c.event_type == OPENED,
                trigger.c.occurred_at <= as_of,
            )
        )
        for child_id, episode_id, stored in conn.execute(query):
            band = _band(stored)
            if band is not None and (child_id, episode_id) not in bands:
                bands[(child_id, episode_id)] = band
    return bands


def _early(
    conn: Connection, agency_id: str, as_of: datetime, missing: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[datetime, str | None]]:
    """For duties the engine never opened: the first event by `as_of` that would have
    discharged each (it came before the duty: done before it began), with its detail (a
    screening's result). A return screening may be one made without naming an episode."""
    if not missing:
        return {}
    e = _events.c
    wanted = set(missing)
    by_rule = {event_type: rule_id for rule_id, event_type in EPISODE_DUTIES.items()}
    first: dict[tuple[str, str, str], tuple[datetime, str, str | None]] = {}
    unnamed: dict[str, tuple[datetime, str, str | None]] = {}
    for chunk in _chunks(sorted({c for c, _, _ in missing})):
        query = select(
            e.child_id, e.episode_id, e.event_type, _raw(e.occurred_at), e.event_id, e.detail
        )
        query = query.where(
            e.agency_id == agency_id,
            e.child_id.in_(chunk),
            e.event_type.in_(tuple(by_rule)),
            e.occurred_at <= as_of,
        )
        for child_id, episode_id, event_type, raw, event_id, detail in conn.execute(query):
            rule_id = by_rule[event_type]
            at = _at(raw)
            if episode_id is None:
                if rule_id == RETURN_SCREENING:
                    seen = unnamed.get(child_id)
                    if seen is None or (at, event_id) < seen[:2]:
                        unnamed[child_id] = (at, event_id, detail)
                continue
            key = (child_id, episode_id, rule_id)
            if key in wanted and (key not in first or (at, event_id) < first[key][:2]):
                first[key] = (at, event_id, detail)
    out = {key: (at, detail) for key, (at, _, detail) in first.items()}
    for child_id, episode_id, rule_id in missing:
        if rule_id == RETURN_SCREENING and (child_id, episode_id, rule_id) not in out:
            found = unnamed.get(child_id)
            if found is not None:
                out[(child_id, episode_id, rule_id)] = (found[0], found[2])
    return out


def _overdue(
    conn: Connection, agency_id: str, as_of: datetime, rows: Sequence[_Row]
) -> list[OverdueDuty]:
    """The duties overdue at `as_of`: an overdue step for a deadline before `as_of` whose duty
    no event by `as_of` resolved; in the county of the child's jurisdiction at `as_of` (its
    newest event by then, as the engine's state holds it)."""
    steps = [
        r
        for r in rows
        if r.rule_id.endswith(OVERDUE)
        and r.due_at is not None
        and r.due_at < as_of
        and not _resolved_by(r, as_of)
    ]
    if not steps:
        return []
    # Each child's newest event by as_of: one seek of (agency, child, occurred_at) per child.
    children, e, newer = _children_table, _events, _events.alias("i")
    newest = (
        select(newer.c.event_id)
        .where(
            newer.c.agency_id == children.c.agency_id,
            newer.c.child_id == children.c.child_id,
            newer.c.occurred_at <= as_of,
        )
        .order_by(newer.c.occurred_at.desc(), newer.c.event_id.desc())
        .limit(1)
        .correlate(children)
        .scalar_subquery()
    )
    where: dict[str, tuple[str, str | None]] = {}
    for chunk in _chunks(sorted({r.child_id for r in steps})):
        query = (
            select(children.c.child_id, e.c.state, e.c.county)
            .select_from(children)
            .join(e, and_(e.c.agency_id == children.c.agency_id, e.c.event_id == newest))
            .where(children.c.agency_id == agency_id, children.c.child_id.in_(chunk))
        )
        for child_id, state, county in conn.execute(query).all():
            if state is None:
                raise _stale()
            where[child_id] = (state, county)
    out: list[OverdueDuty] = []
    for r in steps:
        state, county = where.get(r.child_id, (r.trigger_state, r.trigger_county))
        assert r.due_at is not None
        out.append(OverdueDuty(agency_id, state, county, r.rule_id[: -len(OVERDUE)], r.due_at))
    out.sort(key=lambda o: (o.rule_id, o.due_at, o.state, o.county or ""))
    return out


# --- helpers -------------------------------------------------------------------------------------


def _duty(
    duties: dict[tuple[str, str, str], _Row],
    early: dict[tuple[str, str, str], tuple[datetime, str | None]],
    episode: tuple[str, str],
    rule_id: str,
    started_at: datetime,
    as_of: datetime,
) -> tuple[Duty, str | None]:
    """An episode's duty at `as_of`, and the detail of the event that discharged it by then
    (a screening's result). A duty the engine never opened is done when an event that would
    discharge it came first (due: None), else not done."""
    found = duties.get((*episode, rule_id))
    if found is not None:
        done = _done(found, as_of)
        detail = found.resolved_detail if done is not None else None
        return Duty(rule_id, found.started_at, found.due_at, done), detail
    first = early.get((*episode, rule_id))
    if first is None:
        return Duty(rule_id, started_at, None, None), None
    return Duty(rule_id, started_at, None, first[0]), first[1]


def _result(detail: str | None) -> ScreeningResult | None:
    for result in SCREENING_RESULTS:
        if detail == result:
            return result
    return None


def _done(r: _Row, as_of: datetime) -> datetime | None:
    """When the duty was discharged, if by `as_of`."""
    return r.discharged_at if r.discharged_at is not None and r.discharged_at <= as_of else None


def _resolved_by(r: _Row, as_of: datetime) -> bool:
    """Whether an event that occurred by `as_of` resolved the duty (discharged it, or found it
    not owed)."""
    if r.status != "resolved":
        return False
    at = r.resolved_event_at or r.discharged_at or r.resolved_at
    return at is not None and at <= as_of


def _trigger(r: _Row) -> TraffickingTrigger:
    status = _status(r.trigger_code) if r.trigger_type == IDENTIFIED else None
    return status or "clear_concern"


def _status(code: str | None) -> TraffickingStatus | None:
    for status in TRAFFICKING_STATUSES:
        if code == status:
            return status
    return None


def _raw(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A time column read as the driver gives it (SQLite: its text; PostgreSQL: a datetime),
    read by `_instant`: datetime.fromisoformat is several times faster than the SQLite
    dialect's own parsing, which is most of the time of a year's rows."""
    return type_coerce(column, String())


def _instant(value: object) -> datetime | None:
    """A stored instant as an aware datetime (the read model stores UTC: services.console.models
    .UtcDateTime); None for NULL."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            # SQLite's text is the UTC time without its offset: naming it is 6 times faster
            # than datetime.replace (a year of rows holds a million times).
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _at(value: object) -> datetime:
    found = _instant(value)
    if found is None:
        raise _stale()
    return found


def _band(stored: str | None) -> AgeBand | None:
    for band in AGE_BANDS:
        if stored == band:
            return band
    return None


def _setting(child: _Child, last_seen_at: datetime) -> str:
    """The placement the child was in when last seen: the latest one started at or before it,
    unless that one had ended before it (as services.report.facts does for events)."""
    at = bisect.bisect_right(child.placements, last_seen_at, key=lambda p: p[0])
    if at == 0:
        return NO_PLACEMENT
    started, _, placement_id, setting = child.placements[at - 1]
    ended = child.ended.get(placement_id)
    if ended is not None and started <= ended < last_seen_at:
        return NO_PLACEMENT
    return setting


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]
