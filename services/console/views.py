"""What each page shows, in words: read-model rows (services.console.queries) turned into the
plain values the templates print. Pure: times are given, nothing is read or written here.

Every time is on the agency's wall clock with its zone and offset (services.notify.wording), and a
deadline also as an instant (`*_iso`) that the page's script counts down from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from services.console import access
from services.console.models import AckRow, NotificationRow
from services.console.queries import ChildTimeline, EscalationView, OpenEscalation, SilenceView
from services.notify import wording

OUTCOMES = {
    "delivered": "delivered",
    "failed": "failed; will be retried",
    "dead_lettered": "failed for good (dead-lettered)",
    "suppressed": "not sent",
    "pending": "sending",
}
STATUS_WORDS = {"firing": "open", "resolved": "resolved"}


def path_id(value: str) -> str:
    """An id as one URL path segment (ids may hold `/`, `?`, `#`)."""
    return quote(value, safe="")


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


def step_words(step: str) -> str:
    """notify's step as a reader says it: `0` first notice, `r2` reminder 2, `e1` escalation
    level 1 (`e1.2`: its second pass), `resolved` all clear."""
    if step == "0":
        return "first notice"
    if step == "resolved":
        return "all clear"
    if step[:1] == "r" and step[1:].isdigit():
        return f"reminder {step[1:]}"
    if step[:1] == "e":
        level, _, run = step[1:].partition(".")
        if level.isdigit() and (not run or run.isdigit()):
            return f"escalation level {level}" + (f", pass {run}" if run else "")
    return step


def attempt_lines(rows: list[NotificationRow], zone: ZoneInfo) -> list[AttemptLine]:
    return [
        AttemptLine(
            at=_local(r.at, zone),
            receiver=r.receiver,
            person=r.person_id,
            channel=r.channel,
            step=step_words(r.step),
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
            note=r.note,
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


def escalation_page(
    view: EscalationView, zone: ZoneInfo, now: datetime, *, sees_child: bool
) -> EscalationPage:
    """The escalation as the page shows it; the evidence (facts about the child, such as the
    risk tier) and the link to the child's record only to those who see children's records."""
    row = view.row
    due = row.due_at
    notes = [
        AckLine(who=n.person_id or "someone", at=_local(n.at, zone), note=n.note, stops=False)
        for n in view.notes
    ]
    return EscalationPage(
        escalation_id=row.escalation_id,
        action=row.action,
        severity=row.severity,
        status_words=STATUS_WORDS.get(row.status, row.status),
        open=row.status == "firing",
        rule_id=row.rule_id,
        child_id=row.child_id,
        child_link=sees_child,
        county=row.county,
        state=row.state,
        due_iso=due.isoformat() if due is not None else "",
        due_local=_local(due, zone) if due is not None else "",
        left=wording.due_in(due, now) if due is not None else "",
        basis=row.basis,
        facts=wording.evidence_items(row.evidence_items, zone) if sees_child else [],
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


EVENT_WORDS = {
    "child.registered": "Registered with the agency",
    "child.updated": "Record updated",
    "placement.started": "Placement started",
    "placement.ended": "Placement ended",
    "missing.opened": "Reported missing",
    "missing.law_enforcement_reported": "Reported to law enforcement",
    "missing.ncmec_reported": "Reported to NCMEC",
    "missing.party_notified": "Told",
    "missing.search_effort": "Search effort recorded",
    "missing.staffing_held": "Staffing held",
    "missing.located": "Located",
    "return.debrief_completed": "Return interview done",
    "return.crime_disclosed": "A crime was disclosed at the return interview",
    "return.crime_reported": "The disclosed crime was reported to law enforcement",
    "screening.completed": "Trafficking screening done",
    "trafficking.identified": "Identified as a victim of trafficking",
    "trafficking.law_enforcement_reported": "Trafficking reported to law enforcement",
}


def _code_words(code: str) -> str:
    return wording.class_words(code) if code in wording.CLASS_WORDS else code.replace("_", " ")


@dataclass(frozen=True)
class TimelineLine:
    at: str
    kind: str  # event, duty, done
    words: str
    link: str | None = None


@dataclass(frozen=True)
class ChildPage:
    child_id: str
    state: str
    county: str | None
    caseworker_id: str | None
    supervisor_id: str | None
    missing: bool
    timeline: list[TimelineLine]


def child_page(found: ChildTimeline, child_id: str, view: str, zone: ZoneInfo) -> ChildPage:
    """A child's timeline as `view` ("full" or "summary", services.console.access) may see it:
    events, the duties they caused and when each was done, oldest first."""
    dated: list[tuple[datetime, int, TimelineLine]] = []
    for event in found.events:
        if not access.shows_event(view, event.event_type):
            continue
        words = EVENT_WORDS.get(event.event_type, event.event_type.replace(".", ": "))
        if event.detail and access.shows_detail(view, event.event_type):
            words += (
                f" ({_code_words(event.detail)})"
                if words != "Told"
                else f" {_code_words(event.detail)}"
            )
        dated.append(
            (event.occurred_at, 0, TimelineLine(_local(event.occurred_at, zone), "event", words))
        )
    for esc in found.escalations:
        link = f"/escalations/{path_id(esc.escalation_id)}"
        if esc.fired_at is not None:
            due = f", due {_local(esc.due_at, zone)}" if esc.due_at else ""
            line = TimelineLine(
                _local(esc.fired_at, zone), "duty", f"Duty: {esc.action}{due}", link
            )
            dated.append((esc.fired_at, 1, line))
        if esc.resolved_at is not None:
            line = TimelineLine(_local(esc.resolved_at, zone), "done", f"Done: {esc.action}", link)
            dated.append((esc.resolved_at, 2, line))
    dated.sort(key=lambda d: (d[0], d[1]))
    child = found.child
    state = child.state if child else (found.escalations[0].state if found.escalations else "")
    county = child.county if child else (found.escalations[0].county if found.escalations else None)
    return ChildPage(
        child_id=child_id,
        state=state,
        county=county,
        caseworker_id=child.caseworker_id if child else None,
        supervisor_id=child.supervisor_id if child else None,
        missing=any(e.closed_at is None and e.opened_at is not None for e in found.episodes),
        timeline=[line for _, _, line in dated],
    )


@dataclass(frozen=True)
class SilenceLine:
    starts: str
    ends: str
    what: str
    created_by: str
    reason: str
    state: str


def silence_lines(rows: list[SilenceView], zone: ZoneInfo) -> list[SilenceLine]:
    """`rule_id is risk.tier-changed and county matches Jack.*`; a maintenance window names its
    receiver."""
    lines: list[SilenceLine] = []
    for s in rows:
        parts = [
            f"{m.label} is {m.value}" if m.op == "=" else f"{m.label} matches {m.value}"
            for m in s.matchers
        ]
        what = " and ".join(parts) or "everything that may be silenced"
        if s.receiver:
            what = f"maintenance of {s.receiver}: {what}"
        lines.append(
            SilenceLine(
                starts=_local(s.starts_at, zone),
                ends=_local(s.ends_at, zone),
                what=what,
                created_by=s.created_by,
                reason=s.reason or "—",
                state=s.state,
            )
        )
    return lines
