"""The read model's tables (SQLAlchemy 2 typed declarative models).

Only what a console shows: ids, states, counties, staff ids, times and codes. A child's name,
description, date of birth, photo, sex, risk indicators, an escalation's subject or evidence and
an acknowledgement's note are never stored (services.console.projection never maps them).

Every table that belongs to an agency carries `agency_id`, first in its key or an index, so an
agency-scoped query is an index range. Notification records and acknowledgements carry no agency
of the escalation: they are keyed by escalation_id and reached by joining `escalations`.
Migrations (services/console/migrations) create these tables; never `create_all` in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Index, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints so that migrations name them the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

ID = 128  # the contract's identifiers are at most 128 characters
REF = 256  # receivers, codes and other references


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC and read back aware on both databases (SQLite keeps no zone:
    without this a time at -06:00 would sort before one at 04:00Z). A naive time is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        del dialect  # the same on both databases
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive time has no instant")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        del dialect
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Child(Base):
    """A child as the console lists it: where (state, county) and who is responsible."""

    __tablename__ = "children"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    child_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    state: Mapped[str] = mapped_column(String(2))
    county: Mapped[str | None] = mapped_column(String(REF))
    caseworker_id: Mapped[str | None] = mapped_column(String(ID))
    supervisor_id: Mapped[str | None] = mapped_column(String(ID))

    __table_args__ = (
        Index("ix_children_agency_caseworker", "agency_id", "caseworker_id"),
        Index("ix_children_agency_supervisor", "agency_id", "supervisor_id"),
    )


class Episode(Base):
    """A missing episode: when it was opened and when the child was located (NULL: open)."""

    __tablename__ = "episodes"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    episode_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    child_id: Mapped[str] = mapped_column(String(ID))
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_episodes_agency_child", "agency_id", "child_id"),)


class EscalationRow(Base):
    """One escalation: its latest status, and when it fired and was resolved."""

    __tablename__ = "escalations"

    escalation_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    child_id: Mapped[str] = mapped_column(String(ID))
    episode_id: Mapped[str | None] = mapped_column(String(ID))
    rule_id: Mapped[str] = mapped_column(String(ID))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(4096))
    state: Mapped[str] = mapped_column(String(2))
    county: Mapped[str | None] = mapped_column(String(REF))
    caseworker_id: Mapped[str | None] = mapped_column(String(ID))
    supervisor_id: Mapped[str | None] = mapped_column(String(ID))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_escalations_agency_status_due", "agency_id", "status", "due_at"),
        Index("ix_escalations_agency_child", "agency_id", "child_id"),
    )


class NotificationRow(Base):
    """One attempt or outcome of one notification (care.notifications.v1). `agency_id`: the
    escalation's agency, in records notify writes since it carries one (older ones: reach them
    by joining `escalations`)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_agency_at", "agency_id", "at"),)

    notification_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    escalation_id: Mapped[str] = mapped_column(String(ID), index=True)
    receiver: Mapped[str] = mapped_column(String(REF))
    recipient_class: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(64))
    escalation_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(REF))
    person_id: Mapped[str | None] = mapped_column(String(ID))
    silence_id: Mapped[str | None] = mapped_column(String(ID))
    redirected_to: Mapped[str | None] = mapped_column(String(REF))
    digest_id: Mapped[str | None] = mapped_column(String(ID))
    agency_id: Mapped[str | None] = mapped_column(String(64))


class AckRow(Base):
    """One acknowledgement: one per (escalation, who), who being the person's id or
    `receiver:<name>`. The note is never stored (free text)."""

    __tablename__ = "acks"

    escalation_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    who: Mapped[str] = mapped_column(String(REF + 16), primary_key=True)
    receiver: Mapped[str] = mapped_column(String(REF))
    person_id: Mapped[str | None] = mapped_column(String(ID))
    person_agency_id: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str | None] = mapped_column(String(16))
    stops: Mapped[bool]
    acked_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Offset(Base):
    """The next offset to read of each partition, written in the transaction of the rows that
    the records before it produced."""

    __tablename__ = "projection_offsets"

    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
