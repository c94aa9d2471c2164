"""The notify HTTP API (docs/contract.md): acknowledgements, the open list, health and metrics."""

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.bearer import bearer_token
from services.common.models import Strict
from services.notify.acks import check_ack_token
from services.notify.ledger import Ledger
from services.notify.metrics import NotifyMetrics
from services.notify.records import Ack
from services.notify.settings import NotifySettings


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
    router = APIRouter()
    secret = settings.ack_secret.get_secret_value()

    def operator(request: Request) -> None:
        token = bearer_token(request.headers.get("authorization"))
        expected = settings.notify_api_token.get_secret_value().encode()
        # Compared as bytes: any header value, non-ASCII included, is a 401, never a 500.
        presented = (token or "").encode("utf-8", "surrogateescape")
        if token is None or not hmac.compare_digest(presented, expected):
            raise HTTPException(
                401, "missing or unknown API token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def acknowledge(escalation_id: str, ack: AckIn) -> Response:
        problem = check_ack_token(secret, escalation_id, ack.receiver, ack.token, datetime.now(UTC))
        if problem == "expired":
            raise HTTPException(
                403, "this acknowledgement link has expired; acknowledge in the console"
            )
        if problem:
            raise HTTPException(403, "token does not match this escalation and receiver")
        first = ledger.acks.get(escalation_id)
        if first is not None:  # acknowledged already: the first acknowledgement stands
            return JSONResponse(
                {
                    "escalation_id": escalation_id,
                    "status": "acknowledged",
                    "acknowledged_by": first.receiver,
                    "acknowledged_at": first.acked_at.isoformat(),
                },
                status_code=200,
            )
        if escalation_id not in ledger.open:
            raise HTTPException(404, "no open escalation with this id")
        record = Ack(escalation_id=escalation_id, receiver=ack.receiver, acked_at=datetime.now(UTC))
        try:
            await ledger.record_ack(record)
        except Exception:
            raise HTTPException(
                503, "could not record the acknowledgement; retry", headers={"Retry-After": "5"}
            ) from None
        metrics.acks.inc()
        return JSONResponse(
            {"escalation_id": escalation_id, "status": "acknowledged"}, status_code=202
        )

    @router.post("/v1/escalations/{escalation_id}/ack", status_code=202)
    async def post_ack(
        escalation_id: str,
        request: Request,
        receiver: Annotated[str | None, Query()] = None,
        token: Annotated[str | None, Query()] = None,
    ) -> Response:
        """Acknowledge an escalation with the receiver's token (from the ack link): as JSON body
        {receiver, token}, as a form, or as query parameters. Stops reminders and escalation."""
        if receiver is None or token is None:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                try:
                    ack = AckIn.model_validate_json(await request.body())
                except ValueError:
                    raise HTTPException(422, "body needs receiver and token") from None
            else:
                form = await request.form()
                if "receiver" not in form or "token" not in form:
                    raise HTTPException(422, "receiver and token are required")
                ack = AckIn(receiver=str(form["receiver"]), token=str(form["token"]))
        else:
            ack = AckIn(receiver=receiver, token=token)
        return await acknowledge(escalation_id, ack)

    @router.get("/v1/escalations/{escalation_id}/ack", response_class=HTMLResponse)
    async def ack_page(escalation_id: str, receiver: str, token: str) -> str:
        """The page an ack link opens: one button that POSTs the acknowledgement."""
        from html import escape

        return (
            "<!doctype html><title>Acknowledge</title><form method=post>"
            f'<input type=hidden name=receiver value="{escape(receiver)}">'
            f'<input type=hidden name=token value="{escape(token)}">'
            f"<p>Acknowledge escalation {escape(escalation_id[:12])}?</p>"
            "<button type=submit>Acknowledge</button></form>"
        )

    @router.get("/v1/escalations", dependencies=[Depends(operator)])
    async def list_escalations(status: str = "open") -> dict[str, Any]:
        """Open escalations for on-call staff (no description of the child)."""
        if status != "open":
            raise HTTPException(422, "status: only 'open' is supported")
        items = []
        for esc_id, entry in sorted(ledger.open.items(), key=lambda kv: kv[1].first_sent_at):
            e = entry.escalation
            items.append(
                {
                    "escalation_id": esc_id,
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
            )
        return {"count": len(items), "escalations": items}

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

    app.include_router(router)
    return app
