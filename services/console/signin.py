"""Signing in and out. The sign-in form carries a token that must match a cookie set with it
(double submit: a page elsewhere cannot sign a browser in as someone else); every attempt is
counted by the lockout before its password is checked; one answer (401) for a wrong password,
an unknown person, a disabled one and one without a password. The audit record is written before
the session exists; signing out always ends the session, and audits it when Kafka takes it."""

from __future__ import annotations

import asyncio
import logging
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.common.people import MAX_PASSWORD
from services.common.secrets import DEMO_SECRETS
from services.console.context import Console, Guard, Refused, render, text_field
from services.console.sessions import fingerprint, same_secret

log = logging.getLogger(__name__)

LOGIN_COOKIE = "carealert_login"
MAX_AGENCY = 64
MAX_STAFF_ID = 128


def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def signin_router(console: Console, guard: Guard) -> APIRouter:
    router = APIRouter()

    def login_page(message: str | None, status: int = 200, agency_hint: str = "") -> Response:
        token = secrets.token_urlsafe(24)
        response = render(
            "login.html",
            status,
            **guard.base(None, "login", "Sign in"),
            login_csrf=token,
            message=message,
            agency_hint=agency_hint,
            idle_minutes=_minutes(console.sessions.idle_s),
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

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/now", status_code=303)

    @router.get("/login")
    async def login_form(request: Request, expired: str | None = None) -> Response:
        token = request.cookies.get(console.session_cookie)
        if console.sessions.find(token, console.now(), touch=False) is not None:
            return RedirectResponse("/now", status_code=303)
        message = None
        if expired:
            message = (
                f"You were signed out after {_minutes(console.sessions.idle_s)} minutes without"
                " activity, or your session ended. Sign in again."
            )
        return login_page(message)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        sent = form.get("csrf")
        if (
            not guard.same_origin(request)
            or not isinstance(sent, str)
            or not cookie
            or not same_secret(cookie, sent)
        ):
            console.metrics.sign_ins.labels("refused").inc()
            return login_page("The sign-in form had expired. Sign in again.", 403)
        try:
            agency_id = text_field(form, "agency", required=True).strip()
            person_id = text_field(form, "person", required=True).strip()
            password = text_field(form, "password", required=True)
        except Refused:
            return login_page("Give the agency, your staff id and your password.", 422)
        too_long = (
            len(agency_id) > MAX_AGENCY
            or len(person_id) > MAX_STAFF_ID
            or len(password) > MAX_PASSWORD
        )
        now = console.now()
        if not too_long and not console.lockout.attempt(agency_id, person_id, now):
            console.metrics.sign_ins.labels("locked").inc()
            return login_page(
                f"Too many wrong passwords for this staff id. Try again in"
                f" {_minutes(console.lockout.window_s)} minutes, or ask your agency's operator"
                " to reset your password.",
                429,
            )
        person = None
        if not too_long:
            async with console.hashing:
                person = await asyncio.to_thread(
                    console.people.verify_password, agency_id, person_id, password
                )
        if person is not None and password in DEMO_SECRETS and not console.demo:
            log.warning("sign-in with the public demo password refused outside demo mode")
            person = None
        if person is None:
            console.metrics.sign_ins.labels("wrong").inc()
            return login_page("Agency, staff id or password is wrong.", 401, agency_id[:64])
        console.lockout.succeeded(agency_id, person_id)
        await guard.audited(person.agency_id, person.id, "console.sign_in", person.id)
        token, _ = console.sessions.start(
            person.agency_id, person.id, person.roles, now, fingerprint(person.password_hash)
        )
        console.metrics.sign_ins.labels("ok").inc()
        response = RedirectResponse("/now", status_code=303)
        response.set_cookie(
            console.session_cookie,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        viewer = guard.posted(request, form)
        console.sessions.end(request.cookies.get(console.session_cookie))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(console.session_cookie, path="/")
        try:
            await guard.audited(
                viewer.agency_id, viewer.person_id, "console.sign_out", viewer.person_id
            )
        except Refused:
            pass  # signed out all the same: counted in carealert_console_audit_failures_total
        return response

    return router
