"""The console's pages for a signed-in person: Now, an escalation (with Acknowledge and Add
note), a child's timeline, failed deliveries, on call, silences. Every query takes the viewer's
agency first (services.console.queries): another agency's id is not found, like an unknown one.
Viewing an escalation or a child's record and every action are audited first (Guard.audited);
an action's form is checked before it is audited, and audited before notify is asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from services.common.escalations import SEVERITIES
from services.common.people import People
from services.console import access, queries, views
from services.console.acking import Answer, new_note_id
from services.console.context import Console, Guard, Refused, render, render_fragment, text_field
from services.console.models import ID
from services.console.sessions import Session
from services.notify.records import NOTE_MAX_CHARS, is_note_id
from services.notify.wording import local_time

ONCALL_DAYS = 7
MAX_COUNTY = 64
NOW_ROWS = 200

FLASH = {
    "acknowledged": ("status", "Acknowledged. The reminders and escalation for it have stopped."),
    "receipt": ("status", "Recorded. Your role does not stop the reminders for this alert."),
    "already": ("status", "You had acknowledged this already; your first acknowledgement stands."),
    "noted": ("status", "Your note was added."),
    "not_open": ("problem", "This escalation is no longer open: it was resolved meanwhile."),
    "refused": ("problem", "notify did not take this from your account; ask your supervisor."),
    "unavailable": ("problem", "Could not reach notify to record this. Try again in a minute."),
}


def clean_note(raw: str) -> str:
    """A note as one line of printable text (line breaks become spaces); Refused (422) when too
    long or not printable, naming the field and never repeating it."""
    text = " ".join(raw.split())
    if len(text) > NOTE_MAX_CHARS:
        raise Refused(422, "Note too long", f"note: at most {NOTE_MAX_CHARS} characters.")
    if not text.isprintable():
        raise Refused(422, "Note not accepted", "note: only printable characters.")
    return text


def _sees_children(viewer: Session) -> bool:
    return access.record_view(viewer.roles) is not None


def pages_router(console: Console, guard: Guard) -> APIRouter:
    router = APIRouter()

    # --- Now ------------------------------------------------------------------------------

    def now_filters(request: Request, viewer: Session) -> queries.NowFilters:
        q = request.query_params
        severity = q.get("severity") or None
        if severity is not None and severity not in SEVERITIES:
            raise Refused(422, "Not accepted", f"severity: one of {', '.join(SEVERITIES)}.")
        rule = (q.get("rule") or "").strip() or None
        if rule is not None and len(rule) > ID:
            raise Refused(422, "Not accepted", f"rule: at most {ID} characters.")
        county = (q.get("county") or "").strip() or None
        if county is not None and len(county) > MAX_COUNTY:
            raise Refused(422, "Not accepted", f"county: at most {MAX_COUNTY} characters.")
        mine = viewer.person_id if q.get("mine") == "1" else None
        return queries.NowFilters(severity=severity, rule_id=rule, county=county, mine=mine)

    def filter_query(filters: queries.NowFilters) -> str:
        pairs = {
            "severity": filters.severity,
            "rule": filters.rule_id,
            "county": filters.county,
            "mine": "1" if filters.mine else None,
        }
        return urlencode({k: v for k, v in pairs.items() if v})

    async def now_rows(viewer: Session, filters: queries.NowFilters) -> dict[str, Any]:
        """The rows' template context: the first NOW_ROWS rows and how many there are."""

        def read(s: Any) -> tuple[list[queries.OpenEscalation], int]:
            items = queries.open_escalations(s, viewer.agency_id, filters, limit=NOW_ROWS)
            total = (
                len(items)
                if len(items) < NOW_ROWS
                else queries.open_count(s, viewer.agency_id, filters)
            )
            return items, total

        items, total = await console.read(read)
        zone = console.agency(viewer.agency_id).zone
        return {
            "rows": views.now_rows(items, zone, console.now()),
            "total": total,
            "filtered": bool(filter_query(filters)),
            "child_links": _sees_children(viewer),
        }

    @router.get("/now")
    async def now_page(request: Request) -> Response:
        viewer = guard.viewer(request)
        filters = now_filters(request, viewer)
        rows = await now_rows(viewer, filters)
        rules = await console.read(lambda s: queries.open_rules(s, viewer.agency_id))
        counties = await console.read(lambda s: queries.open_counties(s, viewer.agency_id))
        query = filter_query(filters)
        return render(
            "now.html",
            **guard.base(viewer, "now", "Now"),
            **rows,
            filters=filters,
            severities=SEVERITIES,
            rules=rules,
            counties=counties,
            rows_url="/now/rows" + (f"?{query}" if query else ""),
            refresh_s=console.refresh_s,
        )

    @router.get("/now/rows")
    async def now_rows_fragment(request: Request) -> Response:
        viewer = guard.viewer(request, touch=False)  # the page refreshing is not the person
        rows = await now_rows(viewer, now_filters(request, viewer))
        return HTMLResponse(render_fragment("_rows.html", **rows))

    # --- an escalation --------------------------------------------------------------------

    async def escalation_of(viewer: Session, escalation_id: str) -> queries.EscalationView:
        found = None
        if len(escalation_id) <= ID:
            found = await console.read(
                lambda s: queries.escalation(s, viewer.agency_id, escalation_id)
            )
        if found is None:
            raise Refused(404, "Not found", "Your agency has no escalation with this id.")
        return found

    @router.get("/escalations/{escalation_id}")
    async def escalation_page(request: Request, escalation_id: str) -> Response:
        viewer = guard.viewer(request)
        found = await escalation_of(viewer, escalation_id)
        await guard.audited(viewer.agency_id, viewer.person_id, "escalation.view", escalation_id)
        zone = console.agency(viewer.agency_id).zone
        page = views.escalation_page(found, zone, console.now(), sees_child=_sees_children(viewer))
        flash = FLASH.get(
            console.sessions.pop_flash(request.cookies.get(console.session_cookie)) or ""
        )
        return render(
            "escalation.html",
            **guard.base(viewer, "escalation", page.action),
            e=page,
            may_act=access.may_act(viewer.roles),
            note_id=new_note_id(),
            acked_by_me=any(a.person_id == viewer.person_id for a in found.acks),
            flash={"kind": flash[0], "text": flash[1]} if flash else None,
        )

    async def act(
        request: Request,
        escalation_id: str,
        action: str,
        prepare: Callable[[Session, FormData], Callable[[], Awaitable[Answer]]],
    ) -> Response:
        """Check the form, the role and the escalation; audit; then ask notify; back to the
        escalation's page with what happened."""
        form = await request.form()
        viewer = guard.posted(request, form)
        if not access.may_act(viewer.roles):
            raise Refused(
                403, "Read only", "Your account reads only: it cannot acknowledge or add notes."
            )
        send = prepare(viewer, form)
        await escalation_of(viewer, escalation_id)
        await guard.audited(viewer.agency_id, viewer.person_id, action, escalation_id)
        answer = await send()
        done: str = answer.outcome
        if action == "escalation.acknowledge" and answer.outcome == "recorded":
            done = "acknowledged" if answer.stops else "receipt"
        elif action == "escalation.note" and answer.outcome in ("recorded", "already"):
            done = "noted"
        console.sessions.set_flash(request.cookies.get(console.session_cookie), done)
        return RedirectResponse(f"/escalations/{views.path_id(escalation_id)}", status_code=303)

    @router.post("/escalations/{escalation_id}/ack")
    async def acknowledge(request: Request, escalation_id: str) -> Response:
        def prepare(viewer: Session, form: FormData) -> Callable[[], Awaitable[Answer]]:
            note = clean_note(text_field(form, "note"))
            return lambda: console.recorder.acknowledge(
                viewer.agency_id, viewer.person_id, escalation_id, note or None
            )

        return await act(request, escalation_id, "escalation.acknowledge", prepare)

    @router.post("/escalations/{escalation_id}/note")
    async def add_note(request: Request, escalation_id: str) -> Response:
        def prepare(viewer: Session, form: FormData) -> Callable[[], Awaitable[Answer]]:
            note = clean_note(text_field(form, "note"))
            if not note:
                raise Refused(422, "Note empty", "note: write something to add.")
            note_id = text_field(form, "note_id")
            if not is_note_id(note_id):
                raise Refused(422, "Not accepted", "note_id: reload the page and try again.")
            return lambda: console.recorder.add_note(
                viewer.agency_id, viewer.person_id, escalation_id, note, note_id
            )

        return await act(request, escalation_id, "escalation.note", prepare)

    # --- a child's record -----------------------------------------------------------------

    @router.get("/children/{child_id:path}")
    async def child_page(request: Request, child_id: str) -> Response:
        viewer = guard.viewer(request)
        view = access.record_view(viewer.roles)
        if view is None:
            raise Refused(403, "Not for your role", "Your role does not see children's records.")
        found = None
        if len(child_id) <= ID:
            found = await console.read(
                lambda s: queries.child_timeline(s, viewer.agency_id, child_id)
            )
        if found is None:
            raise Refused(404, "Not found", "Your agency has no child with this id.")
        await guard.audited(viewer.agency_id, viewer.person_id, "child.view", child_id)
        zone = console.agency(viewer.agency_id).zone
        return render(
            "child.html",
            **guard.base(viewer, "child", f"Child {child_id}"),
            c=views.child_page(found, child_id, view, zone),
            summary=view == "summary",
        )

    # --- deliveries, on call, silences ------------------------------------------------------

    @router.get("/deliveries")
    async def deliveries_page(request: Request) -> Response:
        viewer = guard.viewer(request)
        rows = await console.read(lambda s: queries.deliveries(s, viewer.agency_id))
        zone = console.agency(viewer.agency_id).zone
        return render(
            "deliveries.html",
            **guard.base(viewer, "deliveries", "Deliveries"),
            rows=views.delivery_lines(rows, zone),
        )

    @router.get("/oncall")
    async def oncall_page(request: Request) -> Response:
        viewer = guard.viewer(request)
        agency = console.routing.agencies.get(viewer.agency_id)
        zone = console.agency(viewer.agency_id).zone
        people = console.people
        now = console.now()
        shown = []
        for name, schedule in sorted((agency.schedules if agency else {}).items()):
            shifts = schedule.shifts(now, now + timedelta(days=ONCALL_DAYS))
            shown.append(
                {
                    "name": name,
                    "now": _person(people, viewer.agency_id, schedule.who(now)),
                    "fallback": _person(people, viewer.agency_id, schedule.fallback_person),
                    "shifts": [
                        {
                            "start": local_time(sh.start, zone),
                            "end": local_time(sh.end, zone),
                            "who": _person(people, viewer.agency_id, sh.person_id) or "nobody",
                            "source": sh.source.replace(":", ": "),
                            "gap": sh.person_id is None,
                        }
                        for sh in shifts
                    ],
                }
            )
        return render("oncall.html", **guard.base(viewer, "oncall", "On call"), schedules=shown)

    @router.get("/silences")
    async def silences_page(request: Request) -> Response:
        viewer = guard.viewer(request)
        now = console.now()
        rows = await console.read(lambda s: queries.silences(s, viewer.agency_id, now))
        zone = console.agency(viewer.agency_id).zone
        return render(
            "silences.html",
            **guard.base(viewer, "silences", "Silences"),
            rows=views.silence_lines(rows, zone),
        )

    return router


def _person(people: People, agency_id: str, person_id: str | None) -> str | None:
    """`W-1 (Alex Rivera)`: a colleague as the agency's own staff know them."""
    if person_id is None:
        return None
    person = people.get(agency_id, person_id)
    return f"{person_id} ({person.name})" if person is not None else person_id
