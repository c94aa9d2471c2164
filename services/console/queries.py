"""What the console's pages read from the read model, each through an ORM Session. Every query
takes the viewer's agency first and filters on it: another agency's escalation is not found,
exactly like an unknown one (the pages answer 404 for both).

- `open_escalations`: the agency's firing escalations, least time left first (no deadline last),
  with how many notifications reached someone and whether one of the agency's people
  acknowledged; filters: severity, rule, county, and "mine" (the viewer is the caseworker or
  supervisor).
- `escalation`: one escalation with every notification attempt and every acknowledgement.
- `deliveries`: the agency's notifications that failed or were dead-lettered, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services.console.models import AckRow, EscalationRow, NotificationRow

FAILED = ("failed", "dead_lettered")


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
    row: EscalationRow
    notifications: list[NotificationRow] = field(default_factory=list)
    acks: list[AckRow] = field(default_factory=list)


def open_escalations(
    session: Session, agency_id: str, filters: NowFilters = NowFilters(), limit: int = 200
) -> list[OpenEscalation]:
    """The agency's firing escalations, least time left first."""
    told = (
        select(NotificationRow.escalation_id, func.count().label("told"))
        .where(NotificationRow.status == "delivered")
        .group_by(NotificationRow.escalation_id)
        .subquery()
    )
    stopped = (
        select(AckRow.escalation_id)
        .where(AckRow.stops.is_(True))
        .group_by(AckRow.escalation_id)
        .subquery()
    )
    query = (
        select(
            EscalationRow,
            func.coalesce(told.c.told, 0),
            stopped.c.escalation_id.is_not(None),
        )
        .outerjoin(told, told.c.escalation_id == EscalationRow.escalation_id)
        .outerjoin(stopped, stopped.c.escalation_id == EscalationRow.escalation_id)
        .where(EscalationRow.agency_id == agency_id, EscalationRow.status == "firing")
    )
    if filters.severity is not None:
        query = query.where(EscalationRow.severity == filters.severity)
    if filters.rule_id is not None:
        query = query.where(EscalationRow.rule_id == filters.rule_id)
    if filters.county is not None:
        query = query.where(EscalationRow.county == filters.county)
    if filters.mine is not None:
        query = query.where(
            or_(
                EscalationRow.caseworker_id == filters.mine,
                EscalationRow.supervisor_id == filters.mine,
            )
        )
    query = query.order_by(
        EscalationRow.due_at.asc().nulls_last(),
        EscalationRow.fired_at.asc(),
        EscalationRow.escalation_id,
    ).limit(limit)
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
            told=int(count),
            acknowledged=bool(acked),
        )
        for row, count, acked in session.execute(query)
    ]


def escalation(session: Session, agency_id: str, escalation_id: str) -> EscalationView | None:
    """One of the agency's escalations with its notifications and acknowledgements; None for
    an unknown id and for another agency's alike."""
    row = session.execute(
        select(EscalationRow).where(
            EscalationRow.agency_id == agency_id, EscalationRow.escalation_id == escalation_id
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    notifications = session.execute(
        select(NotificationRow)
        .where(NotificationRow.escalation_id == escalation_id)
        .order_by(NotificationRow.at, NotificationRow.notification_id, NotificationRow.attempt)
    ).scalars()
    acks = session.execute(
        select(AckRow).where(AckRow.escalation_id == escalation_id).order_by(AckRow.acked_at)
    ).scalars()
    return EscalationView(row, list(notifications), list(acks))


def deliveries(session: Session, agency_id: str, limit: int = 200) -> list[NotificationRow]:
    """The agency's failed and dead-lettered notifications, newest first (records that name
    their agency, and older ones through their escalation)."""
    mine = select(EscalationRow.escalation_id).where(EscalationRow.agency_id == agency_id)
    query = (
        select(NotificationRow)
        .where(
            NotificationRow.status.in_(FAILED),
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
