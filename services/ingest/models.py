"""ingest's HTTP bodies other than events (those are services.common.events): what responses
carry, declared once so the OpenAPI document names them for generated clients.

Response models allow extra fields (clients must ignore fields they do not know, so fields can
be added). Optional fields are absent, never null, in what ingest sends: the schema says so."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


def _absent_not_null(schema: dict[str, Any]) -> None:
    """An optional field ingest leaves out: no `default: null` in its schema."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


_RESPONSE = ConfigDict(json_schema_extra=_absent_not_null)


class ErrorItem(BaseModel):
    """One problem with the request. Never holds a submitted value."""

    model_config = _RESPONSE

    index: Annotated[int, Field(ge=0)] | SkipJsonSchema[None] = Field(
        default=None, description="Position of the event in a batch (batch requests only)."
    )
    field: str = Field(
        description="Dotted path of the field (e.g. `payload.episode_id`), `(root)` for the"
        " body as a whole, or `events` for a batch's shape."
    )
    problem: str = Field(description="What is wrong, for a person.")
    type: str | SkipJsonSchema[None] = Field(
        default=None, description="A stable code for the problem (e.g. `missing`, `json_too_deep`)."
    )


class Problem(BaseModel):
    """Every 4xx and 5xx body of ingest."""

    model_config = _RESPONSE

    detail: str = Field(description="What went wrong, for a person.")
    errors: list[ErrorItem] | SkipJsonSchema[None] = Field(
        default=None, description="One entry per problem, when the problem is with fields."
    )


class EventAccepted(BaseModel):
    """One event written to Kafka (acks=all)."""

    event_id: str
    status: Literal["accepted"] = "accepted"


class BatchAccepted(BaseModel):
    """Every event of a batch written to Kafka (acks=all), in the order sent."""

    accepted: int = Field(ge=1, description="How many events were accepted.")
    results: list[EventAccepted]
