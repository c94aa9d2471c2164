"""The notify HTTP API (docs/contract.md): acknowledgements (services.notify.ack_api), the
agency's escalations (services.notify.escalations_api), health and metrics. Wiring only: one
router per resource."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.bodylimit import BodyLimit
from services.notify.ack_api import Acknowledger, acks_router
from services.notify.escalations_api import escalations_router
from services.notify.ledger import Ledger
from services.notify.metrics import NotifyMetrics
from services.notify.settings import NotifySettings
from services.notify.silences_api import silences_router
from services.notify.tenancy import Tenancy

# Acknowledgements are a few hundred bytes; the ack endpoint is public (links work without a
# login), so no request may make notify hold more than this.
MAX_BODY_BYTES = 16 * 1024


def create_api(
    settings: NotifySettings,
    ledger: Ledger,
    metrics: NotifyMetrics,
    ready: dict[str, bool],
    tenancy: Tenancy,
    healthy: Callable[[], bool] = lambda: True,
    unready: Callable[[], tuple[bool, str] | None] = lambda: None,
) -> FastAPI:
    """`healthy()` False (the stall watch saw a partition stall) fails /healthz and /readyz;
    `unready()` answering (a partition held on an unreadable record) fails /readyz."""
    app = FastAPI(title="carealert notify", version="1")
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, invalid_request)
    acknowledger = Acknowledger(
        settings.ack_secret.get_secret_value(), ledger, metrics, tenancy.routing, tenancy.people
    )
    app.include_router(acks_router(acknowledger, tenancy.tokens))
    app.include_router(escalations_router(tenancy.tokens, tenancy.people, ledger))
    app.include_router(silences_router(tenancy.tokens, tenancy.people, ledger, tenancy.routing))
    app.include_router(health_router(metrics, ready, healthy, unready))
    return app


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own parameter validation: 422 naming each field and the problem, without the
    submitted values its default answer repeats."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = [{"field": _field(e), "problem": e["msg"]} for e in errors]
    detail = "; ".join(f"{p['field']}: {p['problem']}" for p in problems) or "invalid request"
    return JSONResponse({"detail": detail, "errors": problems}, status_code=422)


def _field(error: Any) -> str:
    """The parameter or top-level body field an error is about. Deeper parts of its path are
    left out, and an unknown field is not named: both may be keys the client typed (a child's
    name), which an answer never repeats."""
    loc = [p for p in error.get("loc", ()) if p not in ("query", "body", "path", "header")]
    if error.get("type") == "extra_forbidden" or not loc:
        return "(unknown field)" if loc else "(body)"
    return str(loc[0])


# --- health and metrics -------------------------------------------------------------------------


def health_router(
    metrics: NotifyMetrics,
    ready: dict[str, bool],
    healthy: Callable[[], bool],
    unready: Callable[[], tuple[bool, str] | None],
) -> APIRouter:
    """/healthz, /readyz and /metrics: no token (supervisors, load balancers, Prometheus)."""
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> Response:
        if not healthy():
            return PlainTextResponse("unhealthy: a partition stalled; restarting", status_code=503)
        return PlainTextResponse("ok")

    @router.get("/readyz")
    async def readyz() -> Response:
        if not healthy():
            return PlainTextResponse("not ready: a partition stalled; restarting", status_code=503)
        held = unready()
        if held is not None:
            return PlainTextResponse(held[1], status_code=503)
        if ready.get("ready"):
            return PlainTextResponse("ready")
        return PlainTextResponse("loading ledger from Kafka", status_code=503)

    @router.get("/metrics")
    async def metrics_page() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
