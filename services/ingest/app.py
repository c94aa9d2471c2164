"""The ingest HTTP API (docs/contract.md, "HTTP"): wiring only; validation lives in
services.common.events, durability in the EventSink."""

import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from services.common.canary import is_canary
from services.common.events import (
    EVENT_ADAPTER,
    Event,
    EventBase,
    EventInvalid,
    FieldError,
    check_depth,
    decode_json,
    parse_event,
    parse_event_obj,
    received,
)
from services.ingest.keys import ApiKeys
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from services.ingest.sink import EventSink, SinkUnavailable


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event]


BATCH_ADAPTER: TypeAdapter[BatchIn] = TypeAdapter(BatchIn)


class ApiError(Exception):
    """An HTTP error with a JSON body `{"detail": ..., "errors": [...]}`."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


async def _read_body(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes) -> Any:
    try:
        return decode_json(raw)
    except EventInvalid as exc:
        raise _invalid(exc.errors) from None


def _too_deep(exc: EventInvalid) -> ApiError:
    return ApiError(
        422, "too_deep", "the body is nested too deeply", [e.as_dict() for e in exc.errors]
    )


def _check_depth(raw: bytes) -> None:
    try:
        check_depth(raw)
    except EventInvalid as exc:
        raise _too_deep(exc) from None


def _invalid(errors: Sequence[FieldError], index: int | None = None) -> ApiError:
    rows = [e.as_dict() if index is None else {"index": index, **e.as_dict()} for e in errors]
    return ApiError(422, "invalid", "the event is not valid", rows)


def _check_agency(events: Sequence[EventBase], agency_id: str) -> None:
    wrong = [i for i, e in enumerate(events) if not hmac.compare_digest(e.agency_id, agency_id)]
    if wrong:
        raise ApiError(
            403,
            "forbidden",
            "agency_id does not match the API key's agency",
            [{"index": i, "field": "agency_id", "problem": "not this key's agency"} for i in wrong],
        )


def _event_schema_components() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return schema, defs


def create_app(
    settings: IngestSettings, keys: ApiKeys, sink: EventSink, metrics: IngestMetrics
) -> FastAPI:
    app = FastAPI(
        title="carealert ingest",
        version="1",
        description="Accepts child-welfare events and writes them durably to Kafka.",
    )
    router = APIRouter()
    limit = settings.max_body_bytes

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        metrics.events_rejected.labels(exc.reason).inc()
        body: dict[str, Any] = {"detail": exc.detail}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    def agency(token: Annotated[str, Depends(_bearer)]) -> str:
        found = keys.agency_for(token)
        if found is None:
            raise ApiError(
                401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"}
            )
        return found

    async def publish(events: Sequence[EventBase]) -> None:
        started = time.perf_counter()
        try:
            await sink.publish(events)
        except SinkUnavailable as exc:
            detail = (
                "event store unreachable; nothing was accepted, retry later"
                if str(exc) == "unreachable"
                else "event store unavailable; nothing was accepted, retry later"
            )
            raise ApiError(
                503,
                "unavailable",
                detail,
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from None
        metrics.publish_seconds.observe(time.perf_counter() - started)
        for e in events:
            if not is_canary(e.agency_id):
                metrics.events_accepted.labels(e.event_type).inc()

    event_body = {"$ref": "#/components/schemas/Event"}
    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "Missing or unknown API key"},
        403: {"description": "agency_id is not the API key's agency"},
        413: {"description": "Body over the size limit"},
        415: {"description": "Content-Type is not application/json"},
        422: {"description": "Invalid event: each error names the field path and problem"},
        503: {"description": "Kafka unavailable; retry after Retry-After seconds"},
    }

    @router.post(
        "/v1/events",
        status_code=202,
        responses=responses,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": event_body}},
            }
        },
    )
    async def post_event(
        request: Request, agency_id: Annotated[str, Depends(agency)]
    ) -> dict[str, str]:
        """Accept one event. 202 means Kafka acknowledged it (acks=all)."""
        raw = await _read_body(request, limit)
        try:
            event = parse_event(raw, now=datetime.now(UTC))  # checks the depth first
        except EventInvalid as exc:
            if exc.errors[0].type == "json_too_deep":
                raise _too_deep(exc) from None
            raise _invalid(exc.errors) from None
        _check_agency([event], agency_id)
        await publish([event])
        return {"event_id": event.event_id, "status": "accepted"}

    @router.post(
        "/v1/events:batch",
        status_code=202,
        responses=responses,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["events"],
                            "additionalProperties": False,
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": settings.max_batch_events,
                                    "items": event_body,
                                }
                            },
                        }
                    }
                },
            }
        },
    )
    async def post_batch(
        request: Request, agency_id: Annotated[str, Depends(agency)]
    ) -> dict[str, Any]:
        """Accept up to max_batch_events events, all or none: if any is invalid, nothing is
        published and the 422 lists every bad index and field."""
        raw = await _read_body(request, limit)
        _check_depth(raw)
        now = datetime.now(UTC)
        try:
            # Fast path: one pydantic-core pass over the bytes when everything is valid.
            fast = BATCH_ADAPTER.validate_json(raw, context=received(now))
        except ValidationError:
            fast = None
        if fast is not None and 1 <= len(fast.events) <= settings.max_batch_events:
            _check_agency(fast.events, agency_id)
            await publish(fast.events)
            return {
                "accepted": len(fast.events),
                "results": [{"event_id": e.event_id, "status": "accepted"} for e in fast.events],
            }
        obj = _decode(raw)
        raw_events = obj.get("events") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or set(obj) != {"events"} or not isinstance(raw_events, list):
            raise _invalid([FieldError("events", "must be the only field, a list", "batch_shape")])
        if not 1 <= len(raw_events) <= settings.max_batch_events:
            problem = f"must hold 1 to {settings.max_batch_events} events"
            raise _invalid([FieldError("events", problem, "batch_size")])
        events: list[EventBase] = []
        errors: list[dict[str, Any]] = []
        for i, item in enumerate(raw_events):
            try:
                events.append(parse_event_obj(item, now=now))
            except EventInvalid as exc:
                errors.extend({"index": i, **e.as_dict()} for e in exc.errors)
        if errors:
            raise ApiError(422, "invalid", "invalid events; nothing was published", errors)
        _check_agency(events, agency_id)
        await publish(events)
        return {
            "accepted": len(events),
            "results": [{"event_id": e.event_id, "status": "accepted"} for e in events],
        }

    @router.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        """The process is up."""
        return "ok"

    @router.get("/readyz", responses={503: {"description": "Kafka is not reachable"}})
    async def readyz() -> Response:
        """Ready to accept events: Kafka is reachable."""
        if sink.ready():
            return PlainTextResponse("ready")
        return PlainTextResponse("kafka unreachable", status_code=503)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            event_schema, defs = _event_schema_components()
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs)
            components["Event"] = event_schema
            spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            spec["security"] = [{"bearer": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
