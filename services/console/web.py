"""The console's pages (FastAPI, server-rendered Jinja2, one stylesheet and one script served from
/static): sign-in, Now, an escalation, a child's timeline, failed deliveries, on call, silences;
and /metrics, /healthz, /readyz.

Security: a session cookie (HttpOnly, SameSite=Strict, Secure over TLS) that ends after
`idle_s` without activity; a CSRF token in every form, checked with the request's origin on every
POST; a lockout after repeated wrong passwords; a Content-Security-Policy that allows no inline
script and nothing from anywhere but the console; every query takes the viewer's agency (another
agency's escalation or child is not found, exactly like an unknown one); auditors read only.
Every view of an escalation or a child's record and every action is written to care.audit.v1
first: when that fails, nothing is shown or done (503).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.audit import AuditRecord, audit_record
from services.common.people import MAX_PASSWORD, People
from services.common.secrets import DEMO_SECRETS
from services.common.web import Check
from services.console import access, queries, views
from services.console.acking import Answer, Recorder, new_note_id
from services.console.registry import Registry
from services.console.sessions import Lockout, Session, Sessions
from services.notify.agencies import AgencyView
from services.notify.routing import Routing
from services.notify.wording import local_time

log = logging.getLogger(__name__)

SESSION_COOKIE = "carealert_session"
LOGIN_COOKIE = "carealert_login"
STATIC = Path(__file__).parent / "static"
SEVERITIES = ("critical", "high", "medium", "low")
NOTE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_NOTE = 500
MAX_ID = 128
ONCALL_DAYS = 7

# Sent with every answer: scripts and styles from the console only, no inline script, no
# framing, forms post only here, nothing cached, no referrer to anywhere else (same-origin, not
# no-referrer: with no-referrer a browser sends `Origin: null` on the console's own forms).
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

FLASH = {
    "acknowledged": ("status", "Acknowledged. The reminders and escalation for it have stopped."),
    "receipt": ("status", "Recorded. Your role does not stop the reminders for this alert."),
    "already": ("status", "You had acknowledged this already; your first acknowledgement stands."),
    "noted": ("status", "Your note was added."),
    "not_open": ("problem", "This escalation is no longer open: it was resolved meanwhile."),
    "refused": ("problem", "notify did not take this from your account; ask your supervisor."),
    "unavailable": ("problem", "Could not reach notify to record this. Try again in a minute."),
}


class Audit(Protocol):
    async def __call__(self, record: AuditRecord) -> None: ...


class NotSignedIn(Exception):
    """No live session: a page redirects to sign-in, the Now rows answer 401."""


class Refused(Exception):
    """A page that answers an error in words: 4xx/503 with a heading and a plain sentence."""

    def __init__(self, status: int, heading: str, text: str) -> None:
        super().__init__(heading)
        self.status, self.heading, self.text = status, heading, text


@dataclass
class Console:
    """What the pages need; `now` is the clock (tests move it)."""

    engine: Engine
    routing: Routing
    staff: Registry
    recorder: Recorder
    audit: Audit
    sessions: Sessions
    lockout: Lockout
    refresh_s: float = 5
    secure_cookies: bool = False
    demo: bool = False  # CAREALERT_ENV=demo: the public demo password signs in
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    healthz: Check = lambda: (True, "ok")
    readyz: Check = lambda: (True, "ready")
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def people(self) -> People:
        """The people registry, as it is now (services.console.registry reloads it)."""
        return self.staff.current()

    def agency(self, agency_id: str) -> AgencyView:
        return self.routing.agency(agency_id)

    async def read(self, query: Callable[[DbSession], Any]) -> Any:
        """Run one read-model query in a worker thread (the database driver blocks)."""

        def run() -> Any:
            with DbSession(self.engine) as session:
                return query(session)

        return await asyncio.to_thread(run)


_ENV = Environment(
    loader=PackageLoader("services.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(name).render(**context), status_code=status)


def render_now_rows(rows: list[views.NowRow], filtered: bool, child_links: bool) -> str:
    """The Now table's rows alone (what the page's script swaps in)."""
    return _ENV.get_template("_rows.html").render(
        rows=rows, filtered=filtered, child_links=child_links
    )


def _same_origin(request: Request) -> bool:
    """A POST from the console's own pages: no cross-site fetch metadata, and an Origin (when
    the browser sends one) that is this host."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _clean_note(raw: object) -> str:
    """A note as one line of printable text (line breaks become spaces); Refused (422) when too
    long or not printable, naming the field and never repeating it."""
    text = " ".join(str(raw or "").split())
    if len(text) > MAX_NOTE:
        raise Refused(422, "Note too long", f"note: at most {MAX_NOTE} characters.")
    if not text.isprintable():
        raise Refused(422, "Note not accepted", "note: only printable characters.")
    return text


def create_app(console: Console) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def base(viewer: Session | None, page: str, title: str) -> dict[str, Any]:
        agency = console.agency(viewer.agency_id) if viewer else None
        return {
            "viewer": viewer,
            "viewer_may_act": viewer is not None and access.may_act(viewer.roles),
            "page": page,
            "title": title,
            "agency_name": agency.name if agency else "",
            "zone_name": agency.time_zone if agency else "the agency's time zone",
        }

    def viewer_of(request: Request, *, touch: bool = True) -> Session:
        token = request.cookies.get(SESSION_COOKIE)
        session = console.sessions.find(token, console.now(), touch=touch)
        if session is None:
            raise NotSignedIn()
        person = console.people.get(session.agency_id, session.person_id)
        if person is None or person.disabled:  # left the agency since signing in
            console.sessions.end(token)
            raise NotSignedIn()
        return session

    async def audited(viewer: Session, action: str, object_id: str) -> None:
        record = audit_record(
            viewer.agency_id, viewer.person_id, "console", action, object_id, console.now()
        )
        try:
            await console.audit(record)
        except Exception:
            log.warning("audit write failed", extra={"action": action})
            raise Refused(
                503,
                "Not available right now",
                "The audit trail could not be written, so "
                "nothing was shown or done. Try again in a minute.",
            ) from None

    def posted(request: Request, form: Any) -> Session:
        """The viewer of a POST whose CSRF token and origin are the console's; Refused (403)
        otherwise."""
        viewer = viewer_of(request)
        if not _same_origin(request) or not viewer.csrf_ok(str(form.get("csrf") or "")):
            raise Refused(
                403,
                "Form refused",
                "This form did not come from your console session. "
                "Go back, reload the page and send it again.",
            )
        return viewer

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if request.url.path == "/now/rows":
            return PlainTextResponse("signed out", status_code=401)
        response = RedirectResponse("/login?expired=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        viewer = console.sessions.find(token, console.now(), touch=False)
        headers = {"Retry-After": "60"} if exc.status == 503 else None
        response = render(
            "error.html",
            exc.status,
            **base(viewer, "", exc.heading),
            heading=exc.heading,
            text=exc.text,
        )
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        text = "There is no such page." if exc.status_code == 404 else "That did not work."
        return render(
            "error.html",
            exc.status_code,
            **base(None, "", "Not found"),
            heading="Not found" if exc.status_code == 404 else "Refused",
            text=text,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(sorted({str(e["loc"][-1]) for e in exc.errors()}))
        return render(
            "error.html",
            422,
            **base(None, "", "Not accepted"),
            heading="Not accepted",
            text=f"{fields}: not a value this page takes.",
        )

    # --- health ---------------------------------------------------------------------------

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(console.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Response:
        ok, text = console.healthz()
        return PlainTextResponse(text, status_code=200 if ok else 503)

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, text = console.readyz()
        return PlainTextResponse(text, status_code=200 if ok else 503)

    # --- signing in and out -----------------------------------------------------------------

    def login_page(message: str | None, status: int = 200, agency_hint: str = "") -> Response:
        token = secrets.token_urlsafe(24)
        response = render(
            "login.html",
            status,
            **base(None, "login", "Sign in"),
            login_csrf=token,
            message=message,
            agency_hint=agency_hint,
            idle_minutes=round(console.sessions.idle_s / 60) or 1,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
        )
        return response

    @app.get("/")
    async def home() -> Response:
        return RedirectResponse("/now", status_code=303)

    @app.get("/login")
    async def login_form(request: Request, expired: str | None = None) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if console.sessions.find(token, console.now(), touch=False) is not None:
            return RedirectResponse("/now", status_code=303)
        message = (
            f"You were signed out after {round(console.sessions.idle_s / 60) or 1} minutes "
            "without activity, or your session ended. Sign in again."
            if expired
            else None
        )
        return login_page(message)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        sent = str(form.get("csrf") or "")
        if (
            not _same_origin(request)
            or not cookie
            or not sent.isascii()
            or not secrets.compare_digest(cookie.encode(), sent.encode())
        ):
            return login_page("The sign-in form had expired. Sign in again.", 403)
        agency_id = str(form.get("agency") or "").strip()
        person_id = str(form.get("person") or "").strip()
        password = str(form.get("password") or "")
        if not agency_id or not person_id or not password:
            return login_page("Give the agency, your staff id and your password.", 422)
        if len(agency_id) > 64 or len(person_id) > MAX_ID or len(password) > MAX_PASSWORD:
            return login_page("Agency, staff id or password is wrong.", 401)
        now = console.now()
        if console.lockout.locked(agency_id, person_id, now):
            minutes = round(console.lockout.window_s / 60) or 1
            return login_page(
                f"Too many wrong passwords for this staff id. Try again in {minutes} minutes, "
                "or ask your agency's operator to reset your password.",
                429,
            )
        person = await asyncio.to_thread(
            console.people.verify_password, agency_id, person_id, password
        )
        if person is not None and password in DEMO_SECRETS and not console.demo:
            log.warning("sign-in with the public demo password refused outside demo mode")
            person = None
        if person is None:
            console.lockout.failed(agency_id, person_id, now)
            return login_page("Agency, staff id or password is wrong.", 401, agency_id[:64])
        console.lockout.succeeded(agency_id, person_id)
        token, session = console.sessions.start(person.agency_id, person.id, person.roles, now)
        await audited(session, "console.sign_in", person.id)
        response = RedirectResponse("/now", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        viewer = posted(request, form)
        await audited(viewer, "console.sign_out", viewer.person_id)
        console.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- Now ----------------------------------------------------------------------------------

    def now_filters(request: Request, viewer: Session) -> queries.NowFilters:
        q = request.query_params
        severity = q.get("severity") or None
        if severity is not None and severity not in SEVERITIES:
            raise Refused(422, "Not accepted", f"severity: one of {', '.join(SEVERITIES)}.")
        rule = (q.get("rule") or "").strip() or None
        if rule is not None and len(rule) > MAX_ID:
            raise Refused(422, "Not accepted", f"rule: at most {MAX_ID} characters.")
        county = (q.get("county") or "").strip() or None
        if county is not None and len(county) > 64:
            raise Refused(422, "Not accepted", "county: at most 64 characters.")
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

    async def now_rows(viewer: Session, filters: queries.NowFilters) -> list[views.NowRow]:
        items = await console.read(lambda s: queries.open_escalations(s, viewer.agency_id, filters))
        zone = console.agency(viewer.agency_id).zone
        return views.now_rows(items, zone, console.now())

    @app.get("/now")
    async def now_page(request: Request) -> Response:
        viewer = viewer_of(request)
        filters = now_filters(request, viewer)
        rows = await now_rows(viewer, filters)
        rules = await console.read(lambda s: queries.open_rules(s, viewer.agency_id))
        query = filter_query(filters)
        return render(
            "now.html",
            **base(viewer, "now", "Now"),
            rows=rows,
            filters=filters,
            filtered=bool(query),
            severities=SEVERITIES,
            rules=rules,
            rows_url="/now/rows" + (f"?{query}" if query else ""),
            refresh_s=console.refresh_s,
            child_links=access.record_view(viewer.roles) is not None,
        )

    @app.get("/now/rows")
    async def now_rows_fragment(request: Request) -> Response:
        viewer = viewer_of(request, touch=False)  # the page refreshing is not the person
        filters = now_filters(request, viewer)
        rows = await now_rows(viewer, filters)
        links = access.record_view(viewer.roles) is not None
        return HTMLResponse(render_now_rows(rows, bool(filter_query(filters)), links))

    # --- an escalation ----------------------------------------------------------------------

    async def escalation_of(viewer: Session, escalation_id: str) -> queries.EscalationView:
        found = None
        if len(escalation_id) <= MAX_ID:
            found = await console.read(
                lambda s: queries.escalation(s, viewer.agency_id, escalation_id)
            )
        if found is None:
            raise Refused(404, "Not found", "Your agency has no escalation with this id.")
        return found  # type: ignore[no-any-return]

    @app.get("/escalations/{escalation_id}")
    async def escalation_page(
        request: Request, escalation_id: str, done: str | None = None
    ) -> Response:
        viewer = viewer_of(request)
        found = await escalation_of(viewer, escalation_id)
        await audited(viewer, "escalation.view", escalation_id)
        zone = console.agency(viewer.agency_id).zone
        page = views.escalation_page(
            found, zone, console.now(), child_link=access.record_view(viewer.roles) is not None
        )
        flash = FLASH.get(done or "")
        return render(
            "escalation.html",
            **base(viewer, "escalation", page.action),
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
        do: Callable[[Session, Any], Awaitable[Answer]],
    ) -> Response:
        form = await request.form()
        viewer = posted(request, form)
        if not access.may_act(viewer.roles):
            raise Refused(
                403, "Read only", "Your account reads only: it cannot acknowledge or add notes."
            )
        await escalation_of(viewer, escalation_id)
        await audited(viewer, action, escalation_id)
        answer = await do(viewer, form)
        done: str = answer.outcome
        if action == "escalation.acknowledge" and answer.outcome == "recorded":
            done = "acknowledged" if answer.stops else "receipt"
        elif action == "escalation.note" and answer.outcome in ("recorded", "already"):
            done = "noted"
        return RedirectResponse(f"/escalations/{escalation_id}?done={done}", status_code=303)

    @app.post("/escalations/{escalation_id}/ack")
    async def acknowledge(request: Request, escalation_id: str) -> Response:
        async def do(viewer: Session, form: Any) -> Answer:
            note = _clean_note(form.get("note"))
            return await console.recorder.acknowledge(
                viewer.agency_id, viewer.person_id, escalation_id, note or None
            )

        return await act(request, escalation_id, "escalation.acknowledge", do)

    @app.post("/escalations/{escalation_id}/note")
    async def add_note(request: Request, escalation_id: str) -> Response:
        async def do(viewer: Session, form: Any) -> Answer:
            note = _clean_note(form.get("note"))
            if not note:
                raise Refused(422, "Note empty", "note: write something to add.")
            note_id = str(form.get("note_id") or "")
            if not NOTE_ID.match(note_id):
                raise Refused(422, "Not accepted", "note_id: reload the page and try again.")
            return await console.recorder.add_note(
                viewer.agency_id, viewer.person_id, escalation_id, note, note_id
            )

        return await act(request, escalation_id, "escalation.note", do)

    # --- a child's record ------------------------------------------------------------------

    @app.get("/children/{child_id}")
    async def child_page(request: Request, child_id: str) -> Response:
        viewer = viewer_of(request)
        view = access.record_view(viewer.roles)
        if view is None:
            raise Refused(403, "Not for your role", "Your role does not see children's records.")
        found = None
        if len(child_id) <= MAX_ID:
            found = await console.read(
                lambda s: queries.child_timeline(s, viewer.agency_id, child_id)
            )
        if found is None:
            raise Refused(404, "Not found", "Your agency has no child with this id.")
        await audited(viewer, "child.view", child_id)
        zone = console.agency(viewer.agency_id).zone
        return render(
            "child.html",
            **base(viewer, "child", f"Child {child_id}"),
            c=views.child_page(found, child_id, view, zone),
            summary=view == "summary",
        )

    # --- deliveries, on call, silences ------------------------------------------------------

    @app.get("/deliveries")
    async def deliveries_page(request: Request) -> Response:
        viewer = viewer_of(request)
        rows = await console.read(lambda s: queries.deliveries(s, viewer.agency_id))
        zone = console.agency(viewer.agency_id).zone
        return render(
            "deliveries.html",
            **base(viewer, "deliveries", "Deliveries"),
            rows=views.delivery_lines(rows, zone),
        )

    @app.get("/oncall")
    async def oncall_page(request: Request) -> Response:
        viewer = viewer_of(request)
        agency = console.routing.agencies.get(viewer.agency_id)
        zone = console.agency(viewer.agency_id).zone
        now = console.now()
        shown = []
        for name, schedule in sorted((agency.schedules if agency else {}).items()):
            shifts = schedule.shifts(now, now + timedelta(days=ONCALL_DAYS))
            shown.append(
                {
                    "name": name,
                    "now": _person(console.people, viewer.agency_id, schedule.who(now)),
                    "fallback": _person(console.people, viewer.agency_id, schedule.fallback_person),
                    "shifts": [
                        {
                            "start": local_time(sh.start, zone),
                            "end": local_time(sh.end, zone),
                            "who": _person(console.people, viewer.agency_id, sh.person_id)
                            or "nobody",
                            "source": sh.source.replace(":", ": "),
                            "gap": sh.person_id is None,
                        }
                        for sh in shifts
                    ],
                }
            )
        return render("oncall.html", **base(viewer, "oncall", "On call"), schedules=shown)

    @app.get("/silences")
    async def silences_page(request: Request) -> Response:
        viewer = viewer_of(request)
        now = console.now()
        rows = await console.read(lambda s: queries.silences(s, viewer.agency_id, now))
        zone = console.agency(viewer.agency_id).zone
        return render(
            "silences.html",
            **base(viewer, "silences", "Silences"),
            rows=views.silence_lines(rows, zone),
        )

    return app


def _person(people: People, agency_id: str, person_id: str | None) -> str | None:
    """`W-1 (Alex Rivera)`: a colleague as the agency's own staff know them."""
    if person_id is None:
        return None
    person = people.get(agency_id, person_id)
    return f"{person_id} ({person.name})" if person is not None else person_id
