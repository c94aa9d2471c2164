"""Acknowledgements over HTTP: by the link in a message (its token binds escalation, receiver and
person) or through the API with a bearer token (an operator acting as a person, or a machine
receiver such as a webhook confirming receipt).

Who may stop an escalation's reminders and chain: a person of the escalation's own agency
holding one of the roles the agency file lists (`acknowledge_roles`). Everyone else's
acknowledgement (law enforcement, a shelter, NCMEC, an organisation's mailbox) is recorded as a
receipt and stops nothing of the agency's. Acknowledgements are unique per (escalation, person):
a second one by the same person is answered with their first; one by someone else is added.

The console (services.console) posts here too, as receiver `console` with a token it mints per
form for the person signed in (services.notify.acks.console_ack_token): an acknowledgement
(`via: console`), or a note (`kind: "note"`), which is no acknowledgement: it stops nothing, is
never among who acknowledged, and is unique per (escalation, note_id) so that a form submitted
twice records one note.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator, Field, StringConstraints, ValidationError

from services.common.events import Id, require_printable
from services.common.models import Strict
from services.common.tokens import ApiTokens, Grant
from services.notify.ack_pages import ack_done, ack_form, ack_refused, html_page
from services.notify.acks import (
    CONSOLE_RECEIVER,
    AckSubject,
    check_ack_token,
    check_console_token,
)
from services.notify.addresses import Directory
from services.notify.auth import NOT_OPEN, bearer_grant
from services.notify.config import PLANNED_RECEIVER
from services.notify.metrics import NotifyMetrics
from services.notify.records import (
    NOTE_ID_PATTERN,
    NOTE_MAX_CHARS,
    Ack,
    AckKind,
    AckVia,
    NotificationRecord,
    OpenEntry,
    acknowledgements,
)
from services.notify.routing import Routing
from services.notify.store import NotificationLog

Note = Annotated[
    str, StringConstraints(max_length=NOTE_MAX_CHARS), AfterValidator(require_printable)
]
"""A note with an acknowledgement: one line of printable text (it is shown to the agency)."""


class AckIn(Strict):
    """An acknowledgement by link: the receiver, person and token from the link. Or by the
    console: receiver `console`, the person signed in and the form's token; `kind: "note"`
    with a `note_id` and a `note` adds a note instead of acknowledging."""

    receiver: str = Field(max_length=200, pattern=PLANNED_RECEIVER)
    token: str = Field(max_length=200)
    person: Id | None = None
    note: Note | None = None
    kind: AckKind | None = None
    note_id: str | None = Field(default=None, pattern=NOTE_ID_PATTERN)


# What each field of AckIn must be, for a 422 that names the field and never echoes the value.
FIELD_PROBLEMS = {
    "receiver": "the receiver's name from the link (at most 200 characters)",
    "token": "the token from the link or form (at most 200 characters)",
    "person": "a person's id (1 to 128 printable characters)",
    "note": "at most 500 characters of one line of printable text",
    "kind": 'absent for an acknowledgement, or "note"',
    "note_id": "32 lowercase hexadecimal characters",
}


def note_problem(ack: AckIn) -> str | None:
    """Why `ack` is not a well-formed note, or an acknowledgement carrying a note's id; None when
    it is fine. Names the field, never its value."""
    if ack.kind != "note":
        return "note_id: only a note (kind note) has one" if ack.note_id is not None else None
    if ack.note_id is None:
        return "note_id: required for a note (32 lowercase hexadecimal characters, one per form)"
    if ack.person is None:
        return "person: required for a note (the person adding it)"
    if ack.note is None or not ack.note.strip():
        return "note: required for a note (its text, at most 500 characters)"
    if ack.receiver != CONSOLE_RECEIVER:
        return f"kind: notes are added in the console (receiver {CONSOLE_RECEIVER})"
    return None


class ApiAckIn(Strict):
    """An acknowledgement through the API (bearer token): an optional note."""

    note: Note | None = None


@dataclass(frozen=True)
class Acknowledging:
    """Who is acknowledging, and how. `legacy`: a link the release before this one sent.
    `kind` "note" (with its `note_id`): a note added in the console, not an acknowledgement."""

    receiver: str
    person_id: str | None
    via: AckVia
    note: str | None
    legacy: bool = False
    kind: AckKind | None = None
    note_id: str | None = None


def _body(escalation_id: str, acks: list[Ack], mine: Ack) -> dict[str, Any]:
    """The answer to an acknowledgement. The agency's own people see everyone who
    acknowledged; anyone else (a receipt) sees only their own. Notes are never among them; the
    answer to a note is `status: "noted"` with the note's id, author and time."""
    if mine.is_note:
        return {
            "escalation_id": escalation_id,
            "status": "noted",
            "note_id": mine.note_id,
            "noted_by": mine.who,
            "noted_at": mine.acked_at.isoformat(),
            "stops_reminders": False,
        }
    shown = acknowledgements(acks) if mine.stops else [mine]
    return {
        "escalation_id": escalation_id,
        "status": "acknowledged",
        "acknowledged_by": [a.who for a in shown],
        "acknowledged_at": mine.acked_at.isoformat(),
        "stops_reminders": mine.stops,
    }


def was_told(entry: OpenEntry, receiver: str, told: list[NotificationRecord]) -> bool:
    """Whether `receiver` was sent this escalation: one of its first receivers, or a later
    level's that has a recorded outcome (a level not reached yet does not count)."""
    first = (
        [r.receiver for r in entry.plan.recipients]
        if entry.plan is not None
        else [r for r, _ in entry.targets]
    )
    return receiver in first or any(r.receiver == receiver for r in told)


@dataclass(frozen=True)
class Acknowledger:
    secret: str
    ledger: NotificationLog
    metrics: NotifyMetrics
    routing: Routing
    people: Directory
    # One acknowledgement of an escalation at a time: two clicks by one person at once get one
    # 202 and one 200 naming the first.
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    def by_link(self, escalation_id: str, ack: AckIn) -> Acknowledging:
        """Who a link (or the console's form) acknowledges as; the 422 HTTPException for a
        malformed note, the 403 one for a bad or expired token or a console token naming no
        person."""
        if (problem := note_problem(ack)) is not None:
            raise HTTPException(422, problem)
        if ack.receiver == CONSOLE_RECEIVER:
            return self._by_console(escalation_id, ack)
        subject = AckSubject(escalation_id, ack.receiver, ack.person)
        verdict = check_ack_token(self.secret, subject, ack.token, datetime.now(UTC))
        if verdict == "expired":
            raise HTTPException(
                403, "this acknowledgement link has expired; acknowledge in the console"
            )
        if verdict == "invalid":
            raise HTTPException(403, "token does not match this escalation and receiver")
        return Acknowledging(ack.receiver, ack.person, "link", ack.note, verdict == "legacy")

    def _by_console(self, escalation_id: str, ack: AckIn) -> Acknowledging:
        """The person signed in to the console, whose form's token binds this escalation and
        them (never a link of the release before: it names a person)."""
        if ack.person is None:
            raise HTTPException(
                403, "a console token acknowledges as the person signed in: name them"
            )
        verdict = check_console_token(
            self.secret, escalation_id, ack.person, ack.token, datetime.now(UTC)
        )
        if verdict == "expired":
            raise HTTPException(403, "this console form has expired; reload the page")
        if verdict != "ok":
            raise HTTPException(403, "token does not match this escalation and person")
        return Acknowledging(
            CONSOLE_RECEIVER,
            ack.person,
            "console",
            ack.note or None,
            kind=ack.kind,
            note_id=ack.note_id,
        )

    def by_grant(self, escalation_id: str, grant: Grant, note: str | None) -> Acknowledging:
        """Who an API token acknowledges as. 404 (never 403) when the escalation is not one the
        token's agency or receiver has: another agency's escalation is not confirmed to exist."""
        entry = self.ledger.open.get(escalation_id)
        if grant.role == "auditor":
            raise HTTPException(403, "an auditor's token reads only")
        if grant.role == "receiver":
            receiver = grant.receiver or ""
            spec_shared = receiver in self.routing.shared
            mine = entry is not None and (
                grant.agency_id == entry.escalation.agency_id
                or (grant.agency_id == "*" and spec_shared)
            )
            told = self.ledger.outcomes.get(escalation_id, [])
            if entry is None or not mine or not was_told(entry, receiver, told):
                raise HTTPException(404, NOT_OPEN)
            return Acknowledging(receiver, None, "api", note)
        if entry is None or entry.escalation.agency_id != grant.agency_id:
            raise HTTPException(404, NOT_OPEN)
        if grant.person_id is None:
            raise HTTPException(
                403, "this token names no person; acknowledge with a token issued with --person"
            )
        return Acknowledging("api", grant.person_id, "api", note)

    async def acknowledge(self, escalation_id: str, who: Acknowledging) -> Response:
        """202 once the acknowledgement is in care.acks.v1 (counted); 200 with the earlier one
        when this person (or receiver) acknowledged already. A note likewise: 202 once written
        (not counted as an acknowledgement), 200 with the first when its note_id was recorded
        already. 404 when the escalation is not open, 403 when the person may no longer act,
        503 (Retry-After) when Kafka did not take the write."""
        async with self.locks[escalation_id]:
            entry = self.ledger.open.get(escalation_id)
            if entry is None:
                raise HTTPException(404, NOT_OPEN)
            ack = self._ack(entry, who)
            known = self.ledger.acks.get(escalation_id, [])
            earlier = next((a for a in known if a.key == ack.key), None)
            if earlier is not None:
                return JSONResponse(_body(escalation_id, known, earlier), status_code=200)
            await self._record(ack)
            if not ack.is_note:
                self.metrics.acks.inc()
            return JSONResponse(
                _body(escalation_id, self.ledger.acks.get(escalation_id, [ack]), ack),
                status_code=202,
            )

    def preview(self, escalation_id: str, who: Acknowledging) -> bool:
        """Whether `who` acknowledging would stop the chain; the HTTPException acknowledging
        would meet (404 not open, 403 a person no longer the agency's), before any button."""
        entry = self.ledger.open.get(escalation_id)
        if entry is None:
            raise HTTPException(404, NOT_OPEN)
        return self._ack(entry, who).stops

    def _ack(self, entry: OpenEntry, who: Acknowledging) -> Ack:
        """The acknowledgement to record (services.notify.routing.Agency.stopped_by says whether
        it stops the chain; a note never does); 403 for a person who is not, or no longer, the
        agency's."""
        esc = entry.escalation
        agency = self.routing.agencies.get(esc.agency_id)
        person = None
        if who.person_id is not None:
            person = self.people.get(esc.agency_id, who.person_id)
            if person is None or person.disabled:
                raise HTTPException(403, "this person can no longer acknowledge for the agency")
        roles = person.roles if person is not None else None
        stops = (
            who.kind is None
            and agency is not None
            and agency.stopped_by(roles, who.receiver, who.legacy)
        )
        return Ack(
            escalation_id=esc.escalation_id,
            receiver=who.receiver,
            acked_at=datetime.now(UTC),
            person_id=who.person_id,
            agency_id=person.agency_id if person is not None else None,
            via=who.via,
            note=who.note,
            stops=stops,
            kind=who.kind,
            note_id=who.note_id,
        )

    async def _record(self, record: Ack) -> None:
        """Into care.acks.v1 (the Ledger waits for Kafka's ack); the 503 HTTPException if not."""
        try:
            await self.ledger.record_ack(record)
        except Exception:
            raise HTTPException(
                503, "could not record the acknowledgement; retry", headers={"Retry-After": "5"}
            ) from None


async def _ack_in(
    request: Request, receiver: str | None, token: str | None, person: str | None
) -> AckIn:
    """The receiver, person and token of an acknowledgement: from the query parameters if
    receiver and token are there, else from a JSON body or a form; 422 if they are missing."""
    content_type = request.headers.get("content-type", "")
    if receiver is not None and token is not None:  # the link itself; a note may be posted
        form = await request.form() if "form" in content_type else {}
        note = str(form["note"]) if form.get("note") else None
        return _valid(receiver=receiver, token=token, person=person, note=note)
    if content_type.startswith("application/json"):
        try:
            return AckIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _refused(exc) from None
    form = await request.form()
    if "receiver" not in form or "token" not in form:
        raise HTTPException(422, "receiver and token are required")
    fields = {k: str(form[k]) for k in ("receiver", "token", "person", "note") if form.get(k)}
    return _valid(**fields)


def _valid(**fields: str | None) -> AckIn:
    try:
        return AckIn.model_validate(fields)
    except ValidationError as exc:
        raise _refused(exc) from None


def _refused(exc: ValidationError) -> HTTPException:
    """422 naming each wrong field and what it must be; never the value sent, nor the name of a
    field AckIn does not have (it is chosen by the sender too)."""
    problems: dict[str, str] = {}
    for e in exc.errors():
        name = str(e["loc"][0]) if e["loc"] else ""
        if name in FIELD_PROBLEMS:
            problems[name] = "required" if e["type"] == "missing" else FIELD_PROBLEMS[name]
        elif e["type"] == "extra_forbidden":
            problems["body"] = f"unknown field (the fields: {', '.join(FIELD_PROBLEMS)})"
        else:
            problems["body"] = "a JSON object with receiver and token"
    return HTTPException(422, "; ".join(f"{k}: {v}" for k, v in sorted(problems.items())))


def acks_router(acknowledger: Acknowledger, tokens: ApiTokens) -> APIRouter:
    """POST and GET /v1/escalations/{escalation_id}/ack: a link's token, or a bearer token."""
    router = APIRouter()

    @router.post("/v1/escalations/{escalation_id}/ack", status_code=202)
    async def post_ack(
        escalation_id: str,
        request: Request,
        receiver: Annotated[str | None, Query(max_length=200)] = None,
        token: Annotated[str | None, Query(max_length=200)] = None,
        person: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        """Acknowledge an escalation: with the link's receiver, person and token (JSON body,
        form or query), or with `Authorization: Bearer <API token>` and an optional JSON
        {note}. The owning agency's people stop reminders and escalation."""
        authorization = request.headers.get("authorization")
        browser = _from_browser(request)
        try:
            if authorization is not None:
                grant = bearer_grant(tokens, acknowledger.people, authorization)
                note = await _api_note(request)
                who = acknowledger.by_grant(escalation_id, grant, note)
            else:
                who = acknowledger.by_link(
                    escalation_id, await _ack_in(request, receiver, token, person)
                )
            answer = await acknowledger.acknowledge(escalation_id, who)
        except HTTPException as exc:
            if not browser:
                raise
            return html_page(ack_refused(exc.status_code, str(exc.detail)), exc.status_code)
        if not browser:
            return answer
        body = json.loads(bytes(answer.body))
        return html_page(ack_done(body, answer.status_code == 202), answer.status_code)

    @router.get("/v1/escalations/{escalation_id}/ack", response_class=HTMLResponse)
    async def ack_page(
        escalation_id: str,
        receiver: Annotated[str, Query(max_length=200)],
        token: Annotated[str, Query(max_length=200)],
        person: Annotated[str | None, Query(max_length=128)] = None,
    ) -> HTMLResponse:
        """The page an ack link opens: what acknowledging does and one button that POSTs it;
        a page saying why not when the link is bad or has expired."""
        try:
            ack = _valid(receiver=receiver, token=token, person=person)
            stops = acknowledger.preview(escalation_id, acknowledger.by_link(escalation_id, ack))
        except HTTPException as exc:
            return html_page(ack_refused(exc.status_code, str(exc.detail)), exc.status_code)
        return html_page(ack_form(escalation_id, receiver, person, token, stops))

    return router


def _from_browser(request: Request) -> bool:
    """A person's browser (it asks for HTML), not an API client: it gets a page back."""
    return "text/html" in request.headers.get("accept", "")


async def _api_note(request: Request) -> str | None:
    body = await request.body()
    if not body.strip():
        return None
    try:
        return ApiAckIn.model_validate_json(body).note
    except ValueError:
        raise HTTPException(
            422, "note: at most 500 characters of one line of printable text"
        ) from None
