"""What every console page needs: the `Console` (its parts and settings), rendering, and the
`Guard` that answers who is asking (the session), whether a form is the console's own (CSRF
token and origin), and writes the audit trail before anything is shown or done.

Pages raise `Refused` (an error page in words: 4xx or 503) and `NotSignedIn` (to the sign-in
page; the Now rows answer 401 so that the page's script goes there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession
from starlette.datastructures import FormData

from services.common.audit import AuditRecord, audit_record
from services.common.people import People
from services.common.web import Check
from services.console import access
from services.console.acking import Recorder
from services.console.metrics import ConsoleMetrics
from services.console.registry import Registry
from services.console.sessions import Lockout, Session, Sessions, fingerprint
from services.console.views import path_id
from services.notify.agencies import AgencyView
from services.notify.routing import Routing

log = logging.getLogger(__name__)
T = TypeVar("T")

STATIC: Final = Path(__file__).parent / "static"

# Sent with every answer: scripts and styles from the console only, no inline script, no
# framing, forms post only here, nothing cached, no referrer to anywhere else (same-origin, not
# no-referrer: with no-referrer a browser sends `Origin: null` on the console's own forms).
HEADERS: Final = {
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
    """What the pages need. `origin`: the console's public origin (`https://console.example`)
    when a proxy serves it, else None (the request's Host is the origin); `now` is the clock
    (tests move it)."""

    engine: Engine
    routing: Routing
    staff: Registry
    recorder: Recorder
    audit: Audit
    sessions: Sessions
    lockout: Lockout
    refresh_s: float = 5
    secure_cookies: bool = False
    origin: str | None = None
    demo: bool = False  # CAREALERT_ENV=demo: the public demo password signs in
    metrics: ConsoleMetrics = field(default_factory=lambda: ConsoleMetrics(CollectorRegistry()))
    healthz: Check = lambda: (True, "ok")
    readyz: Check = lambda: (True, "ready")
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Password checks (argon2id, 64 MiB each) at most two at a time: a burst of sign-ins must
    # not take every worker thread the pages read with.
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    @property
    def people(self) -> People:
        """The people registry, as it is now (services.console.registry reloads it)."""
        return self.staff.current()

    @property
    def session_cookie(self) -> str:
        """`__Host-` (Secure, Path=/, no Domain: the browser holds it to this host) over HTTPS."""
        return "__Host-carealert_session" if self.secure_cookies else "carealert_session"

    def agency(self, agency_id: str) -> AgencyView:
        return self.routing.agency(agency_id)

    async def read(self, query: Callable[[DbSession], T]) -> T:
        """Run one read-model query in a worker thread (the database driver blocks)."""

        def run() -> T:
            with DbSession(self.engine) as session:
                return query(session)

        return await asyncio.to_thread(run)


_ENV = Environment(
    loader=PackageLoader("services.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["path_id"] = path_id


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, with the console's headers (error pages too)."""
    return HTMLResponse(_ENV.get_template(name).render(**context), status, headers=HEADERS)


def render_fragment(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(**context)


def text_field(form: FormData, name: str, required: bool = False) -> str:
    """A form field as text; Refused (422, naming the field) for a file or a missing one."""
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise Refused(422, "Not accepted", f"{name}: required.")
        return ""
    if not isinstance(value, str):
        raise Refused(422, "Not accepted", f"{name}: text only, not a file.")
    return value


@dataclass
class Guard:
    console: Console

    def viewer(self, request: Request, *, touch: bool = True) -> Session:
        """The signed-in person, with their roles as the registry has them now; NotSignedIn
        when there is no live session, or its person was disabled, removed or given a new
        password since."""
        console = self.console
        token = request.cookies.get(console.session_cookie)
        session = console.sessions.find(token, console.now(), touch=touch)
        if session is None:
            raise NotSignedIn()
        person = console.people.get(session.agency_id, session.person_id)
        if (
            person is None
            or person.disabled
            or fingerprint(person.password_hash) != session.credential
        ):
            console.sessions.end(token)
            raise NotSignedIn()
        return replace(session, roles=person.roles)

    def same_origin(self, request: Request) -> bool:
        """A POST from the console's own pages: no cross-site fetch metadata, and an Origin (when
        the browser sends one) that is the console's public origin, or this Host's."""
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        if self.console.origin is not None:
            return origin == self.console.origin
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    def posted(self, request: Request, form: FormData) -> Session:
        """The viewer of a POST whose CSRF token and origin are the console's; Refused (403)
        otherwise."""
        viewer = self.viewer(request)
        sent = form.get("csrf")
        if not self.same_origin(request) or not isinstance(sent, str) or not viewer.csrf_ok(sent):
            raise Refused(
                403,
                "Form refused",
                "This form did not come from your console session. "
                "Go back, reload the page and send it again.",
            )
        return viewer

    async def audited(self, agency_id: str, actor: str, action: str, object_id: str) -> None:
        """Write the audit record first; Refused (503) when Kafka does not take it."""
        console = self.console
        record = audit_record(agency_id, actor, "console", action, object_id, console.now())
        try:
            await console.audit(record)
        except Exception:
            console.metrics.audit_failures.inc()
            log.warning("audit write failed", extra={"action": action})
            raise Refused(
                503,
                "Not available right now",
                "The audit trail could not be written, so nothing was shown or done. "
                "Try again in a minute.",
            ) from None

    def base(self, viewer: Session | None, page: str, title: str) -> dict[str, Any]:
        """What the layout shows: who is signed in, the agency's name and zone."""
        agency = self.console.agency(viewer.agency_id) if viewer else None
        return {
            "viewer": viewer,
            "viewer_may_act": viewer is not None and access.may_act(viewer.roles),
            "page": page,
            "title": title,
            "agency_name": agency.name if agency else "",
            "zone_name": agency.time_zone if agency else "the agency's time zone",
        }
