"""The console's web application: the pages (services.console.signin, services.console.pages),
the stylesheet and script under /static, and /metrics, /healthz, /readyz. Every answer carries
the console's headers (services.console.context.HEADERS: a Content-Security-Policy without inline
script, no framing, no caching); a request body over 64 KiB is refused before any route reads
it; an unexpected error is a plain 500 page that names nothing of the request."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.bodylimit import BodyLimit
from services.console.context import (
    HEADERS,
    STATIC,
    Console,
    Guard,
    NotSignedIn,
    Refused,
    render,
)
from services.console.pages import pages_router
from services.console.reports import reports_router
from services.console.signin import signin_router

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a note is 500 characters; nothing the console takes is larger


def create_app(console: Console) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.router.redirect_slashes = False  # no redirect built from the request's Host header
    guard = Guard(console)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(signin_router(console, guard))
    app.include_router(pages_router(console, guard))
    app.include_router(reports_router(console, guard))
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except RuntimeError:
            if not await request.is_disconnected():
                raise
            return Response(status_code=400)  # the client went away mid-request: nothing to log
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def error(status: int, heading: str, text: str, request: Request | None = None) -> Response:
        viewer = None
        if request is not None:
            token = request.cookies.get(console.session_cookie)
            viewer = console.sessions.find(token, console.now(), touch=False)
        response = render(
            "error.html", status, **guard.base(viewer, "", heading), heading=heading, text=text
        )
        if status == 503:
            response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if request.url.path == "/now/rows":
            return PlainTextResponse("signed out", status_code=401, headers=HEADERS)
        response = RedirectResponse("/login?expired=1", status_code=303, headers=HEADERS)
        response.delete_cookie(console.session_cookie, path="/")
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return error(exc.status, exc.heading, exc.text, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error(404, "Not found", "There is no such page.")
        return error(exc.status_code, "Refused", "That did not work.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(sorted({str(e["loc"][-1]) for e in exc.errors()}))
        return error(422, "Not accepted", f"{fields}: not a value this page takes.")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.error("console page failed", extra={"error": type(exc).__name__})
        return error(500, "Something went wrong", "The console could not answer. Try again.")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(console.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Response:
        ok, text = console.healthz()
        return PlainTextResponse(text, status_code=200 if ok else 503)

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, text = console.readyz()
        return PlainTextResponse(text, status_code=200 if ok else 503)

    return app
