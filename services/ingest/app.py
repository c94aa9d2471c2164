"""The ingest HTTP API (docs/contract.md, "HTTP"): wiring only; validation lives in
services.common.events, durability in the EventSink."""

import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from services.common import tracing
from services.common.bearer import bearer_token
from services.common.canary import is_canary
from services.common.events import (
    EVENT_ADAPTER,
    MAX_EVENT_BYTES,
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
from services.ingest.body import BodyReader, BodyRejected, parse_content_encoding
from services.ingest.keys import ApiKeys
from services.ingest.metrics import IngestMetrics
from services.ingest.models import BatchAccepted, EventAccepted, Problem
from services.ingest.settings import IngestSettings
from services.ingest.sink import EventSink, SinkRefused, SinkUnavailable


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


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def _bearer(request: Request) -> str:
    # async, like every dependency here: a plain `def` would be run in a worker thread, two
    # thread hand-offs per request for work that takes microseconds.
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
    return token


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, decoded from its Content-Encoding and without a UTF-8 BOM (services.ingest.body
    states what is accepted). `limit` holds for the bytes received and for the decoded bytes."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    codings = request.headers.getlist("content-encoding")
    try:
        reader = BodyReader(parse_content_encoding(", ".join(codings) if codings else None), limit)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, "too_large", f"body is larger than {limit} bytes")
        async for chunk in request.stream():
            reader.feed(chunk)
        return reader.finish()
    except BodyRejected as exc:
        raise ApiError(exc.status, exc.reason, exc.detail) from None


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


def _field_path(loc: Sequence[int | str]) -> str:
    # FastAPI prefixes where the value came from ("body", "query", "header", "path").
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "(root)"


SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the same request again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with: `Bearer`.",
        "schema": {"type": "string"},
    }
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error response in the OpenAPI document: its body is a Problem."""
    response: dict[str, Any] = {"model": Problem, "description": description}
    if headers:
        response["headers"] = headers
    return response


POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("The body's Content-Encoding does not decode (corrupt or truncated)"),
    401: _problem("Missing or unknown API key", _WWW_AUTHENTICATE),
    403: _problem("agency_id is not the API key's agency; `errors` names each index"),
    413: _problem(
        "Body over the size limit (as received or once decoded), or an event Kafka refuses as"
        " too large; no Retry-After: sending it again as it is will not help"
    ),
    415: _problem(
        "Content-Type is not application/json, or Content-Encoding is not gzip, deflate or identity"
    ),
    422: _problem(
        "Invalid event(s): each error names the field path (and batch index), never a submitted"
        f" value or an unknown field's name; an event over {MAX_EVENT_BYTES} bytes as compact"
        " JSON is invalid (`event_too_large`)"
    ),
    503: _problem("Kafka unavailable; nothing was accepted, retry after Retry-After", _RETRY_AFTER),
}


def _accepted(event_id: str) -> dict[str, str]:
    return {"event_id": event_id, "status": "accepted"}


def _json_202(body: dict[str, Any]) -> Response:
    """A 202 with `body` as compact JSON: the bytes FastAPI would make of the response model
    (EventAccepted, BatchAccepted), without validating again what the handler built."""
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


def _event_accepted(event: EventBase) -> Response:
    return _json_202(_accepted(event.event_id))


def _batch_accepted(events: Sequence[EventBase]) -> Response:
    return _json_202({"accepted": len(events), "results": [_accepted(e.event_id) for e in events]})


def create_app(
    settings: IngestSettings, keys: ApiKeys, sink: EventSink, metrics: IngestMetrics
) -> FastAPI:
    app = FastAPI(
        title="carealert ingest",
        version="1",
        description=(
            "Accepts child-welfare events and writes them durably to Kafka. Bodies are JSON"
            " (`Content-Type: application/json`), sent as is or with `Content-Encoding: gzip` or"
            " `deflate`; the size limit holds as received and once decoded. A UTF-8 byte order"
            " mark before the JSON is ignored. Every error body is a `Problem`."
        ),
    )
    _answer_errors(app, metrics)
    app.include_router(events_router(settings, keys, sink, metrics))
    app.include_router(health_router(sink, metrics))
    _publish_openapi(app, settings)
    return app


def _answer_errors(app: FastAPI, metrics: IngestMetrics) -> None:
    """Every error a Problem body, counted by reason, never echoing what was submitted."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        metrics.events_rejected.labels(exc.reason).inc()
        body: dict[str, Any] = {"detail": exc.detail}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own parameter validation answers in the same shape as every other 422
        (a Problem), without the submitted values FastAPI's default puts in its body."""
        rows = [
            {"field": _field_path(e.get("loc", ())), "problem": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        return await api_error(request, ApiError(422, "invalid", "the request is not valid", rows))


def _key_agency(keys: ApiKeys) -> Callable[[str], Awaitable[str]]:
    """The dependency that gives the agency of the request's API key (401 for an unknown key)."""

    async def agency(token: Annotated[str, Depends(_bearer)]) -> str:
        found = keys.agency_for(token)
        if found is None:
            raise _unauthorized("unknown API key")
        return found

    return agency


def _unavailable(exc: SinkUnavailable, retry_after_s: int) -> ApiError:
    """The 503 for events the sink did not take: nothing was accepted, retry after a while."""
    detail = (
        "event store unreachable; nothing was accepted, retry later"
        if str(exc) == "unreachable"
        else "event store unavailable; nothing was accepted, retry later"
    )
    return ApiError(503, "unavailable", detail, headers={"Retry-After": str(retry_after_s)})


def _refused() -> ApiError:
    """The 413 for an event Kafka refuses as too large: no Retry-After, sending it again as it
    is cannot succeed."""
    return ApiError(
        413,
        "too_large",
        "Kafka refused an event as too large; sending it again as it is will not help",
    )


@dataclass(frozen=True)
class _Publisher:
    """Hands accepted events to the EventSink, with the trace context of the request."""

    sink: EventSink
    metrics: IngestMetrics
    retry_after_s: int

    async def publish(self, request: Request, events: Sequence[EventBase]) -> None:
        """Returns once the sink holds all of `events` (timed, and counted by event type except
        canaries); raises the 503 ApiError if it does not, with none of them accepted, or the
        413 if Kafka refused one as too large."""
        started = time.perf_counter()
        try:
            await self.sink.publish(events, tracing.parse(request.headers.get(tracing.HEADER)))
        except SinkUnavailable as exc:
            raise _unavailable(exc, self.retry_after_s) from None
        except SinkRefused:
            raise _refused() from None
        self.metrics.publish_seconds.observe(time.perf_counter() - started)
        self._count_accepted(events)

    def _count_accepted(self, events: Sequence[EventBase]) -> None:
        for e in events:
            if not is_canary(e.agency_id):
                self.metrics.events_accepted.labels(e.event_type).inc()


def _one_event(raw: bytes, now: datetime) -> EventBase:
    """The event of a postEvent body, or the 422 ApiError (too_deep, invalid) naming each field."""
    try:
        return parse_event(raw, now=now)  # checks the depth first
    except EventInvalid as exc:
        if exc.errors[0].type == "json_too_deep":
            raise _too_deep(exc) from None
        raise _invalid(exc.errors) from None


def _batch_events(raw: bytes, now: datetime, max_events: int) -> Sequence[EventBase]:
    """The events of a postEventBatch body, all of them, or the 422 ApiError naming every bad
    index and field."""
    # The depth check walks the body byte by byte in Python (a batch holds more brackets than
    # its skip test allows): only for a body that is not a valid batch. A valid one can not be
    # too deep (every field of an Event is typed, none takes free-form JSON), and
    # pydantic-core's own parser stops at its recursion limit, so the order changes no answer.
    valid = _valid_batch(raw, now, max_events)
    if valid is not None:
        return valid
    _check_depth(raw)
    return _checked_batch(_decode(raw), now, max_events)


def _valid_batch(raw: bytes, now: datetime, max_events: int) -> Sequence[EventBase] | None:
    """Fast path: a batch valid as a whole, in one pydantic-core pass over the bytes; None for
    anything else (`_checked_batch` then finds every problem)."""
    try:
        batch = BATCH_ADAPTER.validate_json(raw, context=received(now))
    except ValidationError:
        return None
    return batch.events if 1 <= len(batch.events) <= max_events else None


def _checked_batch(obj: Any, now: datetime, max_events: int) -> list[EventBase]:
    """Slow path: the decoded body's shape and size, then each event on its own, so that the
    422 lists every bad index and field."""
    raw_events = obj.get("events") if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or set(obj) != {"events"} or not isinstance(raw_events, list):
        raise _invalid([FieldError("events", "must be the only field, a list", "batch_shape")])
    if not 1 <= len(raw_events) <= max_events:
        problem = f"must hold 1 to {max_events} events"
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
    return events


def _json_body(schema: str) -> dict[str, Any]:
    """`openapi_extra` of a POST that reads its body itself: the body's schema (FastAPI sees no
    body parameter to document) and the API key it needs."""
    return {
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
    }


def events_router(
    settings: IngestSettings, keys: ApiKeys, sink: EventSink, metrics: IngestMetrics
) -> APIRouter:
    """POST /v1/events and /v1/events:batch: an agency's key, its own agency's events only,
    202 once Kafka acknowledged them."""
    router = APIRouter()
    limit = settings.max_body_bytes
    agency = _key_agency(keys)
    publisher = _Publisher(sink, metrics, settings.retry_after_s)

    @router.post(
        "/v1/events",
        status_code=202,
        operation_id="postEvent",
        summary="Submit one event",
        response_model=EventAccepted,
        responses=POST_RESPONSES,
        openapi_extra=_json_body("Event"),
    )
    async def post_event(request: Request, agency_id: Annotated[str, Depends(agency)]) -> Response:
        """Accept one event. 202 means Kafka acknowledged it (acks=all).

        The body may be sent with `Content-Encoding: gzip` or `deflate`; the size limit holds
        for it as received and once decoded. A UTF-8 byte order mark before the JSON is
        ignored."""
        raw = await _read_body(request, limit)
        event = _one_event(raw, now=datetime.now(UTC))
        _check_agency([event], agency_id)
        await publisher.publish(request, [event])
        return _event_accepted(event)

    @router.post(
        "/v1/events:batch",
        status_code=202,
        operation_id="postEventBatch",
        summary="Submit events, all or none",
        response_model=BatchAccepted,
        responses=POST_RESPONSES,
        openapi_extra=_json_body("EventBatch"),
    )
    async def post_batch(request: Request, agency_id: Annotated[str, Depends(agency)]) -> Response:
        """Accept up to max_batch_events events, all or none: if any is invalid, nothing is
        published and the 422 lists every bad index and field. Bodies as for postEvent."""
        raw = await _read_body(request, limit)
        events = _batch_events(raw, now=datetime.now(UTC), max_events=settings.max_batch_events)
        _check_agency(events, agency_id)
        await publisher.publish(request, events)
        return _batch_accepted(events)

    return router


def health_router(sink: EventSink, metrics: IngestMetrics) -> APIRouter:
    """/healthz, /readyz and /metrics: no API key (load balancers, supervisors, Prometheus)."""
    router = APIRouter()
    text_only: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
    }

    @router.get(
        "/healthz",
        operation_id="getHealthz",
        response_class=PlainTextResponse,
        responses=text_only,
    )
    async def healthz() -> str:
        """The process is up (`ok`). No API key."""
        return "ok"

    @router.get(
        "/readyz",
        operation_id="getReadyz",
        response_class=PlainTextResponse,
        responses={
            **text_only,
            503: {
                "description": "Kafka is not reachable",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        },
    )
    async def readyz() -> Response:
        """Ready to accept events (`ready`): Kafka is reachable. No API key."""
        if sink.ready():
            return PlainTextResponse("ready")
        return PlainTextResponse("kafka unreachable", status_code=503)

    @router.get(
        "/metrics",
        operation_id="getMetrics",
        response_class=PlainTextResponse,
        responses=text_only,
    )
    async def metrics_endpoint() -> Response:
        """Prometheus metrics (text exposition format). No API key."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _publish_openapi(app: FastAPI, settings: IngestSettings) -> None:
    """The spec generated clients use: error schemas, the event schema, servers, security."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                servers=[{"url": settings.ingest_public_url}],
            )
            event_schema, defs = _event_schema_components()
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs)
            components["Event"] = event_schema
            components["EventBatch"] = {
                "title": "EventBatch",
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": settings.max_batch_events,
                        "items": {"$ref": "#/components/schemas/Event"},
                    }
                },
            }
            # FastAPI's own 422 body never reaches a client (request_invalid answers a Problem).
            if components.pop("HTTPValidationError", None) is not None:
                components.pop("ValidationError", None)
            spec["components"]["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`carealert apikey`); each key is one agency's.",
                }
            }
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
