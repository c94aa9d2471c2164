"""The notify HTTP API (docs/contract.md): acknowledgements, the open list, health and metrics.
Wiring only: one router per resource; the token checks live in services.notify.acks and
services.common.bearer, what is remembered in the Ledger."""

import asyncio
import hmac
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from services.common.bearer import bearer_token
from services.common.models import Strict
from services.notify.acks import check_ack_token
from services.notify.ledger import Ledger
from services.notify.metrics import NotifyMetrics
from services.notify.records import Ack, OpenEntry
from services.notify.settings import NotifySettings
from services.notify.store import NotificationLog


class AckIn(Strict):
    receiver: str
    token: str
    note: str | None = None


def create_api(
    settings: NotifySettings,
    ledger: Ledger,
    metrics: NotifyMetrics,
    ready: dict[str, bool],
    healthy: Callable[[], bool] = lambda: True,
    unready: Callable[[], tuple[bool, str] | None] = lambda: None,
) -> FastAPI:
    """`healthy()` False (the stall watch saw a partition stall) fails /healthz and /readyz;
    `unready()` answering (a partition held on an unreadable record) fails /readyz."""
    app = FastAPI(title="carealert notify", version="1")
    app.include_router(acks_router(settings, ledger, metrics))
    app.include_router(open_router(settings, ledger))
    app.include_router(health_router(metrics, ready, healthy, unready))
    return app


# --- acknowledgements ---------------------------------------------------------------------------


def _already_acknowledged(escalation_id: str, first: Ack) -> JSONResponse:
    """The 200 for an escalation acknowledged before: the first acknowledgement stands."""
    return JSONResponse(
        {
            "escalation_id": escalation_id,
            "status": "acknowledged",
            "acknowledged_by": first.receiver,
            "acknowledged_at": first.acked_at.isoformat(),
        },
        status_code=200,
    )


@dataclass(frozen=True)
class _Acknowledger:
    """Acknowledges an open escalation for a receiver holding its ack token."""

    secret: str
    ledger: NotificationLog
    metrics: NotifyMetrics
    # One acknowledgement of an escalation at a time: two receivers clicking at once get one
    # 202 and one 200 naming the first.
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    async def acknowledge(self, escalation_id: str, ack: AckIn) -> Response:
        """202 once the acknowledgement is in care.acks.v1 (counted); 200 with the first one if
        the escalation was acknowledged already. Raises the HTTPException: 403 for a bad or
        expired token, 404 for no open escalation with this id, 503 (Retry-After) when Kafka
        did not take the write."""
        self._check_token(escalation_id, ack)
        async with self.locks[escalation_id]:
            return await self._acknowledge(escalation_id, ack)

    async def _acknowledge(self, escalation_id: str, ack: AckIn) -> Response:
        first = self.ledger.acks.get(escalation_id)
        if first is not None:  # acknowledged already: the first acknowledgement stands
            return _already_acknowledged(escalation_id, first)
        if escalation_id not in self.ledger.open:
            raise HTTPException(404, "no open escalation with this id")
        await self._record(
            Ack(escalation_id=escalation_id, receiver=ack.receiver, acked_at=datetime.now(UTC))
        )
        self.metrics.acks.inc()
        return JSONResponse(
            {"escalation_id": escalation_id, "status": "acknowledged"}, status_code=202
        )

    def _check_token(self, escalation_id: str, ack: AckIn) -> None:
        """The 403 HTTPException unless `ack.token` is the receiver's, for this escalation,
        and has not expired."""
        problem = check_ack_token(
            self.secret, escalation_id, ack.receiver, ack.token, datetime.now(UTC)
        )
        if problem == "expired":
            raise HTTPException(
                403, "this acknowledgement link has expired; acknowledge in the console"
            )
        if problem:
            raise HTTPException(403, "token does not match this escalation and receiver")

    async def _record(self, record: Ack) -> None:
        """Into care.acks.v1 (the Ledger waits for Kafka's ack); the 503 HTTPException if not."""
        try:
            await self.ledger.record_ack(record)
        except Exception:
            raise HTTPException(
                503, "could not record the acknowledgement; retry", headers={"Retry-After": "5"}
            ) from None


async def _ack_in(request: Request, receiver: str | None, token: str | None) -> AckIn:
    """The receiver and token of an acknowledgement: from the query parameters if both are
    there, else from a JSON body or a form; the 422 HTTPException if they are missing."""
    if receiver is not None and token is not None:
        return AckIn(receiver=receiver, token=token)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            return AckIn.model_validate_json(await request.body())
        except ValueError:
            raise HTTPException(422, "body needs receiver and token") from None
    form = await request.form()
    if "receiver" not in form or "token" not in form:
        raise HTTPException(422, "receiver and token are required")
    return AckIn(receiver=str(form["receiver"]), token=str(form["token"]))


def ack_form(escalation_id: str, receiver: str, token: str) -> str:
    """The HTML of the ack page: one button that POSTs the acknowledgement (values escaped)."""
    return (
        "<!doctype html><title>Acknowledge</title><form method=post>"
        f'<input type=hidden name=receiver value="{escape(receiver)}">'
        f'<input type=hidden name=token value="{escape(token)}">'
        f"<p>Acknowledge escalation {escape(escalation_id[:12])}?</p>"
        "<button type=submit>Acknowledge</button></form>"
    )


def acks_router(settings: NotifySettings, ledger: Ledger, metrics: NotifyMetrics) -> APIRouter:
    """POST and GET /v1/escalations/{escalation_id}/ack: the receiver's ack token, no API token
    (the link in a message is all a receiver has)."""
    router = APIRouter()
    acknowledger = _Acknowledger(settings.ack_secret.get_secret_value(), ledger, metrics)

    @router.post("/v1/escalations/{escalation_id}/ack", status_code=202)
    async def post_ack(
        escalation_id: str,
        request: Request,
        receiver: Annotated[str | None, Query()] = None,
        token: Annotated[str | None, Query()] = None,
    ) -> Response:
        """Acknowledge an escalation with the receiver's token (from the ack link): as JSON body
        {receiver, token}, as a form, or as query parameters. Stops reminders and escalation."""
        ack = await _ack_in(request, receiver, token)
        return await acknowledger.acknowledge(escalation_id, ack)

    @router.get("/v1/escalations/{escalation_id}/ack", response_class=HTMLResponse)
    async def ack_page(escalation_id: str, receiver: str, token: str) -> str:
        """The page an ack link opens: one button that POSTs the acknowledgement."""
        return ack_form(escalation_id, receiver, token)

    return router


# --- the open list ------------------------------------------------------------------------------


def is_operator(authorization: str | None, api_token: SecretStr) -> bool:
    """Whether an Authorization header carries the operators' bearer token."""
    token = bearer_token(authorization)
    expected = api_token.get_secret_value().encode()
    # Compared as bytes: any header value, non-ASCII included, is a 401, never a 500.
    presented = (token or "").encode("utf-8", "surrogateescape")
    return token is not None and hmac.compare_digest(presented, expected)


def _operator(settings: NotifySettings) -> Callable[[Request], None]:
    """The dependency that lets operators through (401 with WWW-Authenticate otherwise)."""

    def operator(request: Request) -> None:
        if not is_operator(request.headers.get("authorization"), settings.notify_api_token):
            raise HTTPException(
                401, "missing or unknown API token", headers={"WWW-Authenticate": "Bearer"}
            )

    return operator


def open_item(escalation_id: str, entry: OpenEntry) -> dict[str, Any]:
    """One open escalation as on-call staff see it (no description of the child)."""
    e = entry.escalation
    return {
        "escalation_id": escalation_id,
        "rule_id": e.rule_id,
        "severity": e.severity,
        "agency_id": e.agency_id,
        "child_id": e.child_id,
        "episode_id": e.episode_id,
        "due_at": e.due_at.isoformat() if e.due_at else None,
        "created_at": e.created_at.isoformat(),
        "acknowledged_by": entry.acked_by,
        "receivers": [r for r, _ in entry.targets],
    }


def open_list(ledger: Ledger) -> dict[str, Any]:
    """The open escalations, the one first notified earliest first, and how many."""
    items = [
        open_item(esc_id, entry)
        for esc_id, entry in sorted(ledger.open.items(), key=lambda kv: kv[1].first_sent_at)
    ]
    return {"count": len(items), "escalations": items}


def open_router(settings: NotifySettings, ledger: Ledger) -> APIRouter:
    """GET /v1/escalations: the operators' bearer token (notify_api_token)."""
    router = APIRouter()

    @router.get("/v1/escalations", dependencies=[Depends(_operator(settings))])
    async def list_escalations(status: str = "open") -> dict[str, Any]:
        """Open escalations for on-call staff (no description of the child)."""
        if status != "open":
            raise HTTPException(422, "status: only 'open' is supported")
        return open_list(ledger)

    return router


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
