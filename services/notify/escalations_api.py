"""The operators' read API: an agency's open escalations, filtered and paged, and one escalation
with its notifications and acknowledgements. Every request carries an API token scoped to one
agency and a role (operator or auditor); it sees that agency's escalations only, and another
agency's escalation id answers 404 exactly as an unknown one does (a 403 would confirm it exists).
"""

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from services.common.tokens import ApiTokens, Grant
from services.notify.addresses import Directory
from services.notify.auth import NOT_OPEN, role_grant
from services.notify.records import Ack, NotificationRecord, OpenEntry, acknowledgements
from services.notify.store import NotificationLog

READ_ROLES = frozenset({"operator", "auditor"})
StatusFilter = Literal["open", "unacknowledged", "acknowledged"]


def reader(tokens: ApiTokens, people: Directory) -> Callable[[Request], Grant]:
    """The grant of a token that may read escalations (services.notify.auth.role_grant)."""
    return role_grant(tokens, people, READ_ROLES, "read escalations")


@dataclass(frozen=True)
class Filters:
    status: StatusFilter = "open"
    severity: str | None = None
    rule_id: str | None = None
    county: str | None = None
    due_before: datetime | None = None

    def keep(self, entry: OpenEntry) -> bool:
        e = entry.escalation
        acked = entry.acked_by is not None
        return (
            (self.status == "open" or (self.status == "acknowledged") == acked)
            and (self.severity is None or e.severity == self.severity)
            and (self.rule_id is None or e.rule_id == self.rule_id)
            and (self.county is None or (e.jurisdiction.county or "") == self.county)
            and (self.due_before is None or (e.due_at is not None and e.due_at < self.due_before))
        )


def _sort_key(escalation_id: str, entry: OpenEntry) -> str:
    return f"{entry.first_sent_at.isoformat()}|{escalation_id}"


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The sort key a cursor stands for; the 422 HTTPException naming `cursor` otherwise."""
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPException(422, "cursor: not a cursor this API gave") from None
    if "|" not in key:
        raise HTTPException(422, "cursor: not a cursor this API gave")
    return key


def summary(escalation_id: str, entry: OpenEntry, acks: list[Ack]) -> dict[str, Any]:
    """One open escalation as the agency's operators see it (no description of the child)."""
    e = entry.escalation
    return {
        "escalation_id": escalation_id,
        "rule_id": e.rule_id,
        "action": e.action,
        "severity": e.severity,
        "agency_id": e.agency_id,
        "child_id": e.child_id,
        "episode_id": e.episode_id,
        "state": e.jurisdiction.state,
        "county": e.jurisdiction.county,
        "due_at": e.due_at.isoformat() if e.due_at else None,
        "created_at": e.created_at.isoformat(),
        "status": "acknowledged" if entry.acked_by is not None else "unacknowledged",
        "acknowledged_by": [a.who for a in acknowledgements(acks)],
        "receivers": [r for r, _ in entry.targets],
    }


def _notification(r: NotificationRecord) -> dict[str, Any]:
    return {
        "notification_id": r.notification_id,
        "receiver": r.receiver,
        "recipient_class": r.recipient_class,
        "channel": r.channel,
        "step": r.step,
        "status": r.status,
        "attempt": r.attempt,
        "at": r.at.isoformat(),
        **({"reason": r.reason} if r.reason else {}),
    }


def _ack(a: Ack) -> dict[str, Any]:
    return {
        "by": a.who,
        "receiver": a.receiver,
        "via": a.via or "link",
        "at": a.acked_at.isoformat(),
        "stops_reminders": a.stops,
        **({"note": a.note} if a.note else {}),
    }


def _note(a: Ack) -> dict[str, Any]:
    return {"note_id": a.note_id, "by": a.who, "at": a.acked_at.isoformat(), "note": a.note}


def escalations_router(tokens: ApiTokens, people: Directory, ledger: NotificationLog) -> APIRouter:
    """GET /v1/escalations and /v1/escalations/{id}: an operator's or auditor's API token."""
    router = APIRouter()
    grant_of = reader(tokens, people)

    def mine(grant: Grant) -> list[tuple[str, OpenEntry]]:
        return sorted(
            ((k, e) for k, e in ledger.open.items() if e.escalation.agency_id == grant.agency_id),
            key=lambda kv: _sort_key(*kv),
        )

    @router.get("/v1/escalations")
    async def list_escalations(
        grant: Annotated[Grant, Depends(grant_of)],
        status: StatusFilter = "open",
        severity: Annotated[str | None, Query(max_length=20)] = None,
        rule_id: Annotated[str | None, Query(max_length=200)] = None,
        county: Annotated[str | None, Query(max_length=100)] = None,
        due_before: datetime | None = None,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """The token's agency's open escalations, first notified first; `next_cursor` pages on."""
        if due_before is not None and due_before.tzinfo is None:
            raise HTTPException(422, "due_before: needs an offset (e.g. 2026-11-25T10:00:00Z)")
        filters = Filters(status, severity, rule_id, county, due_before)
        after = decode_cursor(cursor) if cursor is not None else ""
        found = [
            (esc_id, entry)
            for esc_id, entry in mine(grant)
            if _sort_key(esc_id, entry) > after and filters.keep(entry)
        ]
        page = found[:limit]
        more = len(found) > limit
        return {
            "count": len(page),
            "escalations": [summary(k, e, ledger.acks.get(k, [])) for k, e in page],
            "next_cursor": encode_cursor(_sort_key(*page[-1])) if more else None,
        }

    @router.get("/v1/escalations/{escalation_id}")
    async def get_escalation(
        escalation_id: str, grant: Annotated[Grant, Depends(grant_of)]
    ) -> dict[str, Any]:
        """One of the agency's open escalations with its notifications, acknowledgements and
        the notes added in the console; 404 for any other id (another agency's included)."""
        entry = ledger.open.get(escalation_id)
        if entry is None or entry.escalation.agency_id != grant.agency_id:
            raise HTTPException(404, NOT_OPEN)
        e = entry.escalation
        acks = ledger.acks.get(escalation_id, [])
        return {
            **summary(escalation_id, entry, acks),
            "basis": e.basis,
            "recipients": list(e.recipients),
            "notifications": [
                _notification(r)
                for r in sorted(
                    ledger.outcomes.get(escalation_id, []), key=lambda r: (r.at, r.receiver)
                )
            ],
            "acks": [_ack(a) for a in acknowledgements(acks)],
            "notes": [_note(a) for a in acks if a.is_note],
        }

    return router
