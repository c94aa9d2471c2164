"""What the console's pages read from the read model, each through an ORM Session. Every query
takes the viewer's agency first and filters on it: another agency's escalation is not found,
exactly like an unknown one (the pages answer 404 for both).

- `open_escalations`: the agency's firing escalations, least time left first (no deadline last),
  with how many notifications reached someone and whether one of the agency's people
  acknowledged; filters: severity, rule, county, and "mine" (the viewer is the caseworker or
  supervisor).
- `escalation`: one escalation with every notification attempt, every acknowledgement and every
  note.
- `deliveries`: the agency's notifications that failed or were dead-lettered, newest first.
- `child_timeline`: one child of the agency with its episodes, events and escalations in time
  order; None for a child the agency has no row and no escalation of.
- `silences`: the agency's silences and maintenance windows active or still to come, the one
  ending soonest first.

Each reads index ranges of the agency (services.console.models), so they stay fast with tens of
thousands of open escalations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

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

FAILED = ("failed", "dead_lettered")
T = TypeVar("T")


@dataclass(frozen=True)
class NowFilters:
    severity: str | None = None
    rule_id: str | None = None
    county: str | None = None
    mine: str | None = None  # a person's id: escalations where they are caseworker or supervisor


@dataclass(frozen=True)
class OpenEscalation:
    escalation_id: str
    child_id: str
    rule_id: str
    severity: str
    action: str
    county: str | None
    due_at: datetime | None
    fired_at: datetime | None
    told: int  # notifications delivered (to anyone, in any step)
    acknowledged: bool  # by one of the agency's people whose acknowledgement stops the chain


@dataclass(frozen=True)
class EscalationView:
    row: EscalationRow  # row.basis, row.evidence_items: the legal basis, the evidence kept
    notifications: list[NotificationRow] = field(default_factory=list)
    acks: list[AckRow] = field(default_factory=list)
    notes: list[NoteRow] = field(default_factory=list)  # oldest first


@dataclass(frozen=True)
class ChildTimeline:
    """One child of the agency: its row (None when only escalations name it), and its episodes,
    events and escalations, each oldest first."""

    child: Child | None
    episodes: list[Episode] = field(default_factory=list)
    events: list[ChildEventRow] = field(default_factory=list)
    escalations: list[EscalationRow] = field(default_factory=list)


@dataclass(frozen=True)
class Matcher:
    """One matcher of a silence: `label` equals (`=`) or fully matches (`=~`) `value`."""

    label: str
    op: Literal["=", "=~"]
    value: str


@dataclass(frozen=True)
class SilenceView:
    silence_id: str
    kind: str  # "silence" or "maintenance"
    state: Literal["active", "pending"]
    matchers: list[Matcher]
    receiver: str | None  # a maintenance window's receiver
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_by: str
    created_at: datetime


def _open(agency_id: str, filters: NowFilters) -> list[ColumnElement[bool]]:
    """The conditions of the agency's firing escalations that pass `filters`."""
    where = [EscalationRow.agency_id == agency_id, EscalationRow.status == "firing"]
    if filters.severity is not None:
        where.append(EscalationRow.severity == filters.severity)
    if filters.rule_id is not None:
        where.append(EscalationRow.rule_id == filters.rule_id)
    if filters.county is not None:
        where.append(EscalationRow.county == filters.county)
    if filters.mine is not None:
        where.append(
            or_(
                EscalationRow.caseworker_id == filters.mine,
                EscalationRow.supervisor_id == filters.mine,
            )
        )
    return where


def open_count(session: Session, agency_id: str, filters: NowFilters = NowFilters()) -> int:
    """How many of the agency's firing escalations pass `filters` (Now shows the first 200)."""
    query = select(func.count()).select_from(EscalationRow).where(*_open(agency_id, filters))
    return int(session.execute(query).scalar_one())


def open_escalations(
    session: Session, agency_id: str, filters: NowFilters = NowFilters(), limit: int = 200
) -> list[OpenEscalation]:
    """The agency's firing escalations, least time left first (no deadline last), at most
    `limit`. The page of rows is an index range of the agency's firing escalations; what was
    delivered and acknowledged is then counted for those rows only."""
    query = select(EscalationRow).where(*_open(agency_id, filters))
    query = query.order_by(
        EscalationRow.due_at.asc().nulls_last(),
        EscalationRow.fired_at.asc(),
        EscalationRow.escalation_id,
    ).limit(limit)
    rows = list(session.execute(query).scalars())
    ids = [row.escalation_id for row in rows]
    told: dict[str, int] = {}
    stopped: set[str] = set()
    if ids:
        told = {
            escalation_id: int(count)
            for escalation_id, count in session.execute(
                select(NotificationRow.escalation_id, func.count())
                .where(
                    NotificationRow.escalation_id.in_(ids),
                    NotificationRow.status == "delivered",
                    _notification_of(agency_id),
                )
                .group_by(NotificationRow.escalation_id)
            )
        }
        stopped = set(
            session.execute(
                select(AckRow.escalation_id)
                .where(
                    AckRow.escalation_id.in_(ids),
                    AckRow.stops.is_(True),
                    # the agency's people; a receiver's of the release before names nobody
                    or_(AckRow.person_agency_id == agency_id, AckRow.person_agency_id.is_(None)),
                )
                .distinct()
            ).scalars()
        )
    return [
        OpenEscalation(
            escalation_id=row.escalation_id,
            child_id=row.child_id,
            rule_id=row.rule_id,
            severity=row.severity,
            action=row.action,
            county=row.county,
            due_at=row.due_at,
            fired_at=row.fired_at,
            told=told.get(row.escalation_id, 0),
            acknowledged=row.escalation_id in stopped,
        )
        for row in rows
    ]


def escalation(session: Session, agency_id: str, escalation_id: str) -> EscalationView | None:
    """One of the agency's escalations with its notifications, acknowledgements and notes; None
    for an unknown id and for another agency's alike."""
    row = session.execute(
        select(EscalationRow).where(
            EscalationRow.agency_id == agency_id, EscalationRow.escalation_id == escalation_id
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    notifications = session.execute(
        select(NotificationRow)
        .where(NotificationRow.escalation_id == escalation_id, _notification_of(agency_id))
        .order_by(NotificationRow.at, NotificationRow.notification_id, NotificationRow.attempt)
    ).scalars()
    acks = session.execute(
        select(AckRow).where(AckRow.escalation_id == escalation_id).order_by(AckRow.acked_at)
    ).scalars()
    notes = session.execute(
        select(NoteRow)
        .where(NoteRow.escalation_id == escalation_id, NoteRow.person_agency_id == agency_id)
        .order_by(NoteRow.at, NoteRow.note_id)
    ).scalars()
    return EscalationView(row, list(notifications), list(acks), list(notes))


def deliveries(session: Session, agency_id: str, limit: int = 200) -> list[NotificationRow]:
    """The agency's failed and dead-lettered notifications that were not delivered after all,
    newest first (records that name their agency, and older ones through their escalation)."""
    mine = select(EscalationRow.escalation_id).where(EscalationRow.agency_id == agency_id)
    later = aliased(NotificationRow)
    delivered = exists().where(
        later.notification_id == NotificationRow.notification_id, later.status == "delivered"
    )
    query = (
        select(NotificationRow)
        .where(
            NotificationRow.status.in_(FAILED),
            ~delivered,
            or_(
                NotificationRow.agency_id == agency_id,
                and_(
                    NotificationRow.agency_id.is_(None),
                    NotificationRow.escalation_id.in_(mine),
                ),
            ),
        )
        .order_by(NotificationRow.at.desc(), NotificationRow.notification_id)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def child_timeline(
    session: Session, agency_id: str, child_id: str, limit: int = 1000
) -> ChildTimeline | None:
    """One of the agency's children: its row, its episodes (by when they opened), its events (by
    when they occurred) and its escalations (by when they fired, or were resolved), each oldest
    first and each the newest `limit` at most. None when the agency has no row of the child and
    no escalation naming it: another agency's child is not found, exactly like an unknown one."""
    child = session.get(Child, (agency_id, child_id))
    escalations = _newest(
        session.execute(
            select(EscalationRow)
            .where(EscalationRow.agency_id == agency_id, EscalationRow.child_id == child_id)
            .order_by(
                func.coalesce(EscalationRow.fired_at, EscalationRow.resolved_at).desc(),
                EscalationRow.escalation_id.desc(),
            )
            .limit(limit)
        ).scalars()
    )
    if child is None and not escalations:
        return None
    episodes = _newest(
        session.execute(
            select(Episode)
            .where(Episode.agency_id == agency_id, Episode.child_id == child_id)
            .order_by(
                func.coalesce(Episode.opened_at, Episode.closed_at).desc(),
                Episode.episode_id.desc(),
            )
            .limit(limit)
        ).scalars()
    )
    events = _newest(
        session.execute(
            select(ChildEventRow)
            .where(ChildEventRow.agency_id == agency_id, ChildEventRow.child_id == child_id)
            .order_by(ChildEventRow.occurred_at.desc(), ChildEventRow.event_id.desc())
            .limit(limit)
        ).scalars()
    )
    return ChildTimeline(child, episodes, events, escalations)


def _newest(rows: Iterable[T]) -> list[T]:
    """Rows read newest first, returned oldest first."""
    return list(rows)[::-1]


def silences(session: Session, agency_id: str, now: datetime) -> list[SilenceView]:
    """The agency's silences and maintenance windows not ended at `now`: active (started, not
    expired) and pending (not started, not expired), the one ending soonest first. As notify
    decides (services.notify.silences.Silence.state): one expired before it started never
    starts."""
    query = (
        select(SilenceRow)
        .where(
            SilenceRow.agency_id == agency_id,
            SilenceRow.ends_at > now,
            or_(
                SilenceRow.expired_at.is_(None),
                and_(SilenceRow.starts_at <= now, SilenceRow.expired_at > now),
            ),
        )
        .order_by(SilenceRow.ends_at, SilenceRow.silence_id)
    )
    return [
        SilenceView(
            silence_id=row.silence_id,
            kind=row.kind,
            state="active" if row.starts_at <= now else "pending",
            matchers=_matchers(row.matchers),
            receiver=row.receiver,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            reason=row.reason,
            created_by=row.created_by,
            created_at=row.created_at,
        )
        for row in session.execute(query).scalars()
    ]


def _matchers(text: str) -> list[Matcher]:
    found: Sequence[Any] = json.loads(text) if text else []
    return [
        Matcher(str(m["label"]), "=~" if m["op"] == "=~" else "=", str(m["value"])) for m in found
    ]


def open_rules(session: Session, agency_id: str) -> list[str]:
    """The rules of the agency's open escalations, for the Now page's rule filter."""
    query = (
        select(EscalationRow.rule_id)
        .where(EscalationRow.agency_id == agency_id, EscalationRow.status == "firing")
        .distinct()
        .order_by(EscalationRow.rule_id)
    )
    return list(session.execute(query).scalars())


def _notification_of(agency_id: str) -> ColumnElement[bool]:
    """A notification record of the agency's (older records name no agency: their escalation,
    already the agency's where this is used, is)."""
    # coalesce, not OR: the same rows, and SQLite keeps looking them up by escalation id
    # instead of reading every notification of the agency through its (agency, at) index.
    return func.coalesce(NotificationRow.agency_id, agency_id) == agency_id


def open_counties(session: Session, agency_id: str) -> list[str]:
    """The counties of the agency's open escalations, for the Now page's county filter."""
    query = (
        select(EscalationRow.county)
        .where(
            EscalationRow.agency_id == agency_id,
            EscalationRow.status == "firing",
            EscalationRow.county.is_not(None),
        )
        .distinct()
        .order_by(EscalationRow.county)
    )
    return [c for c in session.execute(query).scalars() if c is not None]
