"""What each page shows, in words: read-model rows (services.console.queries) turned into the
plain values the templates print. Pure: times are given, nothing is read or written here.

Every time is on the agency's wall clock with its zone and offset (services.notify.wording), and a
deadline also as an instant (`*_iso`) that the page's script counts down from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.console.models import AckRow, NotificationRow
from services.console.queries import EscalationView, OpenEscalation
from services.notify import wording

OUTCOMES = {
    "delivered": "delivered",
    "failed": "failed; will be retried",
    "dead_lettered": "failed for good (dead-lettered)",
    "suppressed": "not sent",
    "pending": "sending",
}
STATUS_WORDS = {"firing": "open", "resolved": "resolved"}


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return wording.local_time(at, zone) if at is not None else "—"


@dataclass(frozen=True)
class NowRow:
    escalation_id: str
    child_id: str
    severity: str
    action: str
    county: str | None
    due_iso: str
    due_local: str
    left: str
    overdue: bool
    told_words: str
    acknowledged: bool


def now_rows(items: list[OpenEscalation], zone: ZoneInfo, now: datetime) -> list[NowRow]:
    """The Now table: time left (or how late), the deadline on the wall clock, who was told."""
    rows: list[NowRow] = []
    for item in items:
        due = item.due_at
        rows.append(
            NowRow(
                escalation_id=item.escalation_id,
                child_id=item.child_id,
                severity=item.severity,
                action=item.action,
                county=item.county,
                due_iso=due.isoformat() if due is not None else "",
                due_local=_local(due, zone) if due is not None else "",
                left=wording.due_in(due, now) if due is not None else "no deadline",
                overdue=due is not None and due < now,
                told_words=_told(item.told),
                acknowledged=item.acknowledged,
            )
        )
    return rows


def _told(count: int) -> str:
    if count == 0:
        return "nobody yet"
    return "1 delivery" if count == 1 else f"{count} deliveries"


@dataclass(frozen=True)
class AttemptLine:
    at: str
    receiver: str
    person: str | None
    channel: str
    step: str
    status: str
    outcome: str


@dataclass(frozen=True)
class AckLine:
    who: str
    at: str
    note: str | None
    stops: bool


def outcome_words(row: NotificationRow) -> str:
    """`delivered`, `failed; will be retried (smtp_timeout)`, `not sent (silenced)`."""
    words = OUTCOMES.get(row.status, row.status.replace("_", " "))
    if row.redirected_to:
        words += f", sent to {row.redirected_to} instead"
    if row.reason:
        words += f" ({row.reason.replace('_', ' ')})"
    return words


def attempt_lines(rows: list[NotificationRow], zone: ZoneInfo) -> list[AttemptLine]:
    return [
        AttemptLine(
            at=_local(r.at, zone),
            receiver=r.receiver,
            person=r.person_id,
            channel=r.channel,
            step=r.step,
            status=r.status,
            outcome=outcome_words(r),
        )
        for r in rows
    ]


def ack_lines(rows: list[AckRow], zone: ZoneInfo) -> list[AckLine]:
    return [
        AckLine(
            who=r.person_id or r.who,
            at=_local(r.acked_at, zone),
            note=getattr(r, "note", None),
            stops=r.stops,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class EscalationPage:
    escalation_id: str
    action: str
    severity: str
    status_words: str
    open: bool
    rule_id: str
    child_id: str
    child_link: bool
    county: str | None
    state: str
    due_iso: str
    due_local: str
    left: str
    basis: str | None
    facts: list[tuple[str, str]]
    notifications: list[AttemptLine]
    acks: list[AckLine]
    notes: list[AckLine]


def evidence_facts(evidence_json: str | None, zone: ZoneInfo) -> list[tuple[str, str]]:
    """The stored evidence (codes and times only) in words; nothing for none or a bad value."""
    if not evidence_json:
        return []
    try:
        evidence = json.loads(evidence_json)
    except ValueError:
        return []
    if not isinstance(evidence, dict):
        return []
    return wording.evidence_items(evidence, zone)


def escalation_page(
    view: EscalationView, zone: ZoneInfo, now: datetime, *, child_link: bool
) -> EscalationPage:
    row = view.row
    due = row.due_at
    notes = [
        AckLine(who=n.person_id, at=_local(n.at, zone), note=n.note, stops=False)
        for n in getattr(view, "notes", [])
    ]
    return EscalationPage(
        escalation_id=row.escalation_id,
        action=row.action,
        severity=row.severity,
        status_words=STATUS_WORDS.get(row.status, row.status),
        open=row.status == "firing",
        rule_id=row.rule_id,
        child_id=row.child_id,
        child_link=child_link,
        county=row.county,
        state=row.state,
        due_iso=due.isoformat() if due is not None else "",
        due_local=_local(due, zone) if due is not None else "",
        left=wording.due_in(due, now) if due is not None else "",
        basis=getattr(row, "basis", None),
        facts=evidence_facts(getattr(row, "evidence", None), zone),
        notifications=attempt_lines(view.notifications, zone),
        acks=ack_lines(view.acks, zone),
        notes=notes,
    )


@dataclass(frozen=True)
class DeliveryLine:
    at: str
    escalation_id: str
    receiver: str
    channel: str
    outcome: str
    reason: str


def delivery_lines(rows: list[NotificationRow], zone: ZoneInfo) -> list[DeliveryLine]:
    return [
        DeliveryLine(
            at=_local(r.at, zone),
            escalation_id=r.escalation_id,
            receiver=r.receiver,
            channel=r.channel,
            outcome=OUTCOMES.get(r.status, r.status),
            reason=(r.reason or "no reason given").replace("_", " "),
        )
        for r in rows
    ]
