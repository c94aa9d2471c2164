"""`/v1/silences`: an agency's silences and maintenance windows (services.notify.silences), listed
by its operators and auditors, made and expired by its operators. Each change is written to
care.silences.v1 and the audit trail (care.audit.v1) before the answer; another agency's silence
answers 404 exactly as an unknown one does."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from services.common.audit import audit_record, write_audit
from services.common.tokens import ApiTokens, Grant
from services.notify.addresses import Directory
from services.notify.auth import role_grant
from services.notify.ledger import Ledger
from services.notify.routing import Routing
from services.notify.silences import (
    Silence,
    SilenceRequest,
    expired,
    new_silence,
    request_problems,
)

NO_SILENCE = "no silence with this id"
StateFilter = Literal["active", "pending", "expired"]


def actor(grant: Grant) -> str:
    """Who a change is recorded as: the token's person, else the token's label."""
    return grant.person_id or f"token:{grant.label}"


def shown(silence: Silence, now: datetime) -> dict[str, Any]:
    return {**silence.model_dump(mode="json", exclude_none=True), "state": silence.state(now)}


def silences_router(
    tokens: ApiTokens,
    people: Directory,
    ledger: Ledger,
    routing: Routing,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    router = APIRouter()
    reader = role_grant(tokens, people, frozenset({"operator", "auditor"}), "read silences")
    writer = role_grant(tokens, people, frozenset({"operator"}), "change silences")

    @router.get("/v1/silences")
    async def list_silences(
        grant: Annotated[Grant, Depends(reader)], state: StateFilter | None = None
    ) -> dict[str, Any]:
        now = clock()
        mine = sorted(
            (s for s in ledger.silences.values() if s.agency_id == grant.agency_id),
            key=lambda s: (s.starts_at, s.silence_id),
        )
        return {"silences": [shown(s, now) for s in mine if state is None or s.state(now) == state]}

    @router.post("/v1/silences", status_code=201)
    async def create_silence(body: SilenceRequest, grant: Annotated[Grant, Depends(writer)]) -> Any:
        now = clock()
        problems = request_problems(body, grant.agency_id, routing, now, ledger.silences.values())
        if problems:
            return JSONResponse(
                {
                    "detail": "; ".join(f"{f}: {p}" for f, p in problems),
                    "errors": [{"field": f, "problem": p} for f, p in problems],
                },
                status_code=422,
            )
        silence = new_silence(body, grant.agency_id, actor(grant), now)
        await ledger.put_silence(silence)
        action = f"{silence.kind}.create"
        record = audit_record(grant.agency_id, actor(grant), "api", action, silence.silence_id, now)
        await write_audit(ledger.producer, record)
        return shown(silence, now)

    @router.delete("/v1/silences/{silence_id}")
    async def expire_silence(silence_id: str, grant: Annotated[Grant, Depends(writer)]) -> Any:
        now = clock()
        found = ledger.silences.get(silence_id)
        if found is None or found.agency_id != grant.agency_id:
            raise HTTPException(404, NO_SILENCE)
        ended = expired(found, actor(grant), now)
        if ended is None:
            return shown(found, now)
        await ledger.put_silence(ended)
        action = f"{found.kind}.expire"
        record = audit_record(grant.agency_id, actor(grant), "api", action, silence_id, now)
        await write_audit(ledger.producer, record)
        return shown(ended, now)

    return router
