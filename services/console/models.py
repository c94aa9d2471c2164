"""The read model's tables (SQLAlchemy 2 typed declarative models).

Only what a console shows: ids, states, counties, staff ids, times, codes, an escalation's legal
basis and its evidence without anything about the child's person (services.console.projection
keeps only scalar values and drops `age` and every key naming a name, birth, description, photo,
address or location), the notes the agency's own people write, and the agency's silences; and,
for the compliance report (services.report.dbsource), codes only: the contract's sex code of a
profile event, a placement's setting, a trafficking finding's status, and an age band at a
duty's start. A child's name, description, date of birth, photo, risk indicators and an
escalation's subject are never stored (services.console.projection never maps them).

Every table that belongs to an agency carries `agency_id`, first in its key or an index, so an
agency-scoped query is an index range. Notification records, acknowledgements and notes carry no
agency of the escalation: they are keyed by escalation_id and reached by joining `escalations`.
Migrations (services/console/migrations) create these tables; never `create_all` in production.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from services.notify.records import NOTE_MAX_CHARS

# Named constraints so that migrations name them the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

ID = 128  # the contract's identifiers are at most 128 characters
REF = 256  # receivers, codes and other references
LONG_TEXT = 4096  # the contract's LongText (an escalation's action and basis)
NOTE = NOTE_MAX_CHARS  # a note: one printable line
SILENCE_REASON = 200  # what the API and the CLI take as a silence's reason

Scalar = str | int | float | bool


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
    """A missing episode: when it was opened and when the child was located (NULL: open).

    For the report (services.report.dbsource), from 0004: the opening event's jurisdiction
    (`state`, `county`), when the child was last seen, and `located_event_at`, when the agency
    learned of the return (the missing.located event's occurred_at, where the return clocks
    start; `closed_at` is the located_at it reports). NULL in rows projected before 0004."""

    __tablename__ = "episodes"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The contract names an episode within its child (every child may have an "E-1"): the key
    # holds the child since 0004.
    child_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    episode_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    state: Mapped[str | None] = mapped_column(String(2))
    county: Mapped[str | None] = mapped_column(String(REF))
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    located_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

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
    action: Mapped[str] = mapped_column(String(LONG_TEXT))
    state: Mapped[str] = mapped_column(String(2))
    county: Mapped[str | None] = mapped_column(String(REF))
    caseworker_id: Mapped[str | None] = mapped_column(String(ID))
    supervisor_id: Mapped[str | None] = mapped_column(String(ID))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The rule's legal basis (the contract's LongText); NULL in rows projected before 0003.
    basis: Mapped[str | None] = mapped_column(String(LONG_TEXT))
    # A JSON object of scalars (str of at most 64 characters, int, float, bool): the record's
    # evidence minus `age` and every key about the child's person; NULL before 0003.
    evidence: Mapped[str | None] = mapped_column(Text)
    # For the report (services.report.dbsource), from 0004; NULL in rows projected before it.
    # The policy version that computed the deadline; the event that started the duty
    # (triggered_by's first); the event that resolved it (a resolved record's last), and when
    # that discharged it (evidence.discharged_at: NULL for a duty found not owed).
    policy_version: Mapped[str | None] = mapped_column(String(ID))
    trigger_event_id: Mapped[str | None] = mapped_column(String(ID))
    resolved_by: Mapped[str | None] = mapped_column(String(ID))
    discharged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The child's age band (services.report.facts.AGE_BANDS) at the duty's start, from the
    # engine's evidence.age (itself never stored): set when the escalation fired on its
    # triggering event (the band at that event's time), NULL when it fired on the clock.
    age_band: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        Index("ix_escalations_agency_status_due", "agency_id", "status", "due_at"),
        Index("ix_escalations_agency_child", "agency_id", "child_id"),
        # The report reads an agency's escalations of a few rules (and their overdue steps).
        Index("ix_escalations_agency_rule", "agency_id", "rule_id"),
    )

    @property
    def evidence_items(self) -> dict[str, Scalar]:
        """The stored evidence as a dict ({} when none); key order as stored (sorted)."""
        return _json_object(self.evidence)


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
    `receiver:<name>`. `note`: the acknowledgement's note (one printable line of at most 500
    characters; NULL when none or not such a line), shown to the escalation's agency only.
    `kind`: NULL, an acknowledgement (a record of kind "note" is a note: `notes`, never here)."""

    __tablename__ = "acks"

    escalation_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    who: Mapped[str] = mapped_column(String(REF + 16), primary_key=True)
    receiver: Mapped[str] = mapped_column(String(REF))
    person_id: Mapped[str | None] = mapped_column(String(ID))
    person_agency_id: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str | None] = mapped_column(String(16))
    stops: Mapped[bool]
    acked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str | None] = mapped_column(String(NOTE))
    kind: Mapped[str | None] = mapped_column(String(16))


class NoteRow(Base):
    """A note one of the agency's people added to an escalation in the console (an Ack record of
    kind "note": it acknowledges nothing and stops nothing). One per (escalation, note_id): the
    console chooses note_id once per form, so a double submit is one note. `note`: one printable
    line of at most 500 characters, shown on the escalation's page to its agency only."""

    __tablename__ = "notes"

    escalation_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    note_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    person_id: Mapped[str | None] = mapped_column(String(ID))
    person_agency_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str] = mapped_column(String(NOTE))


class ChildEventRow(Base):
    """One event of care.events.v1: what happened to a child and when, as codes. `detail` is a
    code, never free text: the result level of `screening.completed` (no_concern,
    possible_concern, clear_concern), the level of `missing.staffing_held`, the party of
    `missing.party_notified`; NULL for every other type."""

    __tablename__ = "child_events"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    child_id: Mapped[str] = mapped_column(String(ID))
    episode_id: Mapped[str | None] = mapped_column(String(ID))
    event_type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    detail: Mapped[str | None] = mapped_column(String(32))
    # For the report (services.report.dbsource), from 0004; no page shows them. The event's
    # jurisdiction; the placement a placement.started or placement.ended names; `code`, a code
    # of the contract the report counts: the setting of placement.started, the sex of
    # child.registered and child.updated, the status of trafficking.identified (NULL for every
    # other type). NULL in rows projected before 0004.
    state: Mapped[str | None] = mapped_column(String(2))
    county: Mapped[str | None] = mapped_column(String(REF))
    placement_id: Mapped[str | None] = mapped_column(String(ID))
    code: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_child_events_agency_child_at", "agency_id", "child_id", "occurred_at"),
        # The report reads an agency's events of a few types (profiles, placements, findings).
        Index("ix_child_events_agency_type_at", "agency_id", "event_type", "occurred_at"),
    )


class SilenceRow(Base):
    """A silence or maintenance window of one agency (care.silences.v1, as notify reads it: the
    last record of each id; a tombstone removes it). `matchers`: a JSON list of
    `{"label", "op" ("=" or "=~"), "value"}` sorted by label then op; `receiver`: a maintenance
    window's receiver. `reason`: NULL when the record's is not one printable line of at most
    200 characters (a record not written through the API or the CLI). `expired_at`: when
    someone expired it early (the silence ended then, or never started)."""

    __tablename__ = "silences"

    silence_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    receiver: Mapped[str | None] = mapped_column(String(REF))
    matchers: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(SILENCE_REASON))
    created_by: Mapped[str] = mapped_column(String(REF))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expired_by: Mapped[str | None] = mapped_column(String(REF))

    __table_args__ = (Index("ix_silences_agency_ends", "agency_id", "ends_at"),)


class Offset(Base):
    """The next offset to read of each partition, written in the transaction of the rows that
    the records before it produced."""

    __tablename__ = "projection_offsets"

    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


def _json_object(text: str | None) -> dict[str, Scalar]:
    if not text:
        return {}
    value = json.loads(text)
    return dict(value) if isinstance(value, dict) else {}
