"""The Event contract (docs/contract.md, "Event"): one pydantic model per event_type.

`parse_event(raw_bytes)` and `parse_event_obj(obj)` are the only ways events enter the system;
both raise `EventInvalid` whose `errors` name each field path and problem and never carry the
submitted values (they may be PII).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError

from services.common import models
from services.common.topics import AGENCY_ID_PATTERN

USPS_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI".split()
)

# What a value may contain. str.isprintable() is False for every C0/C1 control (CR, LF, NUL,
# ...), every format character (bidi overrides and isolates U+202A-U+202E, U+2066-U+2069,
# zero-width U+200B-U+200F, U+2060, U+FEFF) and every separator but the plain space, so nothing
# that passes can add a header line to a mail, reorder text on a screen or hide in a log.
PRINTABLE_PROBLEM = "must contain only printable characters (no control, bidi or zero-width)"
# The same rules as ECMAScript regular expressions (unicode mode) for the published JSON Schema:
# isprintable() refuses exactly the categories Other (C*) and Separator (Z*), space excepted.
PRINTABLE_PATTERN = r"^(?:[^\p{C}\p{Z}]| )*$"
PRINTABLE_LINES_PATTERN = r"^(?:[^\p{C}\p{Z}]| |\n)*$"


def require_printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError(PRINTABLE_PROBLEM)
    return value


def _printable_lines(value: str) -> str:
    if not all(line.isprintable() for line in value.split("\n")):
        raise ValueError(
            "must contain only printable characters and line feeds (no CR, tab or other control)"
        )
    return value


Text = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(require_printable)
]
"""Single-line free text (names, aliases, places): no control character at all."""
LongText = Annotated[
    str, StringConstraints(min_length=1, max_length=4096), AfterValidator(require_printable)
]
"""Longer single-line free text (clothing, locations)."""
MultiLineText = Annotated[
    str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_printable_lines)
]
"""Free text that may span lines: line feeds only."""
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(require_printable)
]
"""An identifier: printable characters only."""
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(require_printable)
]
"""An identifier issued by someone else (report and case numbers, agency names)."""
AgencyId = Annotated[str, StringConstraints(pattern=f"^{AGENCY_ID_PATTERN}$")]

# Timestamps must be plausible: not before 1900, and not further in the future than this skew
# past the moment the event is received (ingest's clock, or the Kafka record's timestamp in the
# rules worker). Validation context {"now": datetime} sets that moment; default: the clock.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(hours=1)


def _received_at(info: ValidationInfo) -> datetime:
    now = info.context.get("now") if isinstance(info.context, dict) else None
    return now if isinstance(now, datetime) else datetime.now(UTC)


def _plausible_time(value: datetime, info: ValidationInfo) -> datetime:
    if value < EARLIEST:
        raise ValueError("must not be before 1900")
    if value > _received_at(info) + FUTURE_SKEW:
        raise ValueError("must not be more than 1 hour in the future")
    return value


def _plausible_birth(value: date, info: ValidationInfo) -> date:
    if value < EARLIEST.date():
        raise ValueError("must not be before 1900")
    if value > (_received_at(info) + FUTURE_SKEW).date():
        raise ValueError("must not be in the future")
    return value


# The only spellings accepted: pydantic alone would also take a missing seconds field, a space
# for the T, a comma before the fraction, +0545 and Unix seconds in a string. RFC 3339 lets "T"
# and "Z" be lower case. Leap seconds (23:59:60) are refused: a Python datetime cannot hold one.
# Checked with fullmatch: Python's `$` would also match before a final line feed.
DATE_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
TIMESTAMP_PROBLEM = (
    "must be an RFC 3339 timestamp with seconds and an offset (2026-11-24T02:10:00Z)"
)
DATE_PROBLEM = "must be a date written YYYY-MM-DD"
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_DATE = re.compile(DATE_PATTERN)


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):  # built in Python, not decoded from JSON
        return value
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise PydanticCustomError("datetime_parsing", TIMESTAMP_PROBLEM)
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise PydanticCustomError("date_parsing", DATE_PROBLEM)
    return value


# strict=False: a before-validator hands pydantic a Python str (vetted by the pattern), which a
# strict datetime would refuse.
Timestamp = Annotated[
    AwareDatetime, Field(strict=False), BeforeValidator(_rfc3339), AfterValidator(_plausible_time)
]
BirthDate = Annotated[
    date, Field(strict=False), BeforeValidator(_iso_date), AfterValidator(_plausible_birth)
]

MAX_JSON_DEPTH = 32
"""Deepest nesting of JSON arrays and objects accepted (an Event needs 4)."""


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if `raw` nests arrays/objects deeper than `limit` (brackets inside strings ignored).
    One linear pass, before any parser can be made to recurse; skipped (at C speed) when the
    body does not even hold `limit` brackets, as every ordinary event does not."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _usps(code: str) -> str:
    if code not in USPS_STATES:
        raise ValueError("must be a two-letter USPS state or territory code")
    return code


StateCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_usps)]

Sex = Literal["female", "male", "other", "unknown"]
RiskIndicator = Literal[
    "prior_trafficking_allegation",
    "sexual_abuse_history",
    "substance_use",
    "developmental_disability",
    "pregnant",
    "needs_medication",
]
Setting = Literal[
    "pre_adoptive_home",
    "foster_family_relative",
    "foster_family_nonrelative",
    "group_home",
    "institution",
    "supervised_independent_living",
    "trial_home_visit",
    "other",
]
EndReason = Literal[
    "planned_move",
    "runaway",
    "disruption",
    "reunification",
    "adoption",
    "guardianship",
    "aged_out",
    "other",
]
Circumstances = Literal["runaway", "abducted", "unknown"]
ImmediateRisk = Literal[
    "with_dangerous_person",
    "dangerous_situation",
    "suspected_trafficking",
    "out_of_character",
    "medical_need",
    "incapacity",
]
Party = Literal[
    "court",
    "guardian_ad_litem",
    "attorney",
    "parent",
    "tribe",
    "juvenile_officer",
    "law_enforcement",
]
StaffingLevel = Literal["supervisor", "multidisciplinary", "court"]
LocationClass = Literal[
    "placement", "family", "friend", "shelter", "law_enforcement", "hospital", "other"
]
ScreeningTool = Literal["cse_it", "tvit", "state_tool", "other"]
ScreeningResult = Literal["no_concern", "possible_concern", "clear_concern"]
# What a child disclosed at the return interview they were the victim of while missing: a kind,
# never the words of the disclosure (docs/domain.md, "Who gets what").
CrimeKind = Literal[
    "sex_trafficking",
    "labor_trafficking",
    "sexual_assault",
    "physical_assault",
    "kidnapping",
    "robbery",
    "other",
]


# --- bounds (docs/contract.md, "Bounded events") -----------------------------------------------
# Every list and every text of an event has a maximum, and so has the event as a whole, so that
# what the rules worker writes because of one event (escalations that carry the description, a
# dead letter of it) stays far below the largest record Kafka takes (about 1 MB): one agency's
# event can never stop the worker, and with it every agency's alerts. (A child's state grows
# with its history; the worker measures it before writing: services.rules.worker.)

MAX_EVENT_BYTES = 128 * 1024
"""Largest event: its compact JSON encoding, as ingest writes it to care.events.v1 (UTF-8,
no insignificant whitespace, absent optional fields left out). The field limits keep every
event below it (about 92 KB at most, with every text at its longest in 4-byte characters;
23 KB in ASCII), so today it refuses nothing the published schema accepts: it is the bound
that holds whatever field is added next. What rules derives from one event (an escalation
carries the description) then stays far below the largest record Kafka takes."""

MAX_ALIASES = 10
MAX_PLACES_FREQUENTED = 20
MAX_FACTORS = 20
MAX_ERRORS = 50
"""Most problems reported for one event (the first ones, then one saying how many more)."""
UNKNOWN_FIELD_PROBLEM = "unknown field (not in the contract for this event type)"


def event_too_large_problem() -> str:
    """What an event over MAX_EVENT_BYTES is told (the limit, never the event's size)."""
    return f"the event is larger than {MAX_EVENT_BYTES} bytes (as compact JSON)"


def at_most(limit: int) -> Any:
    """A list of at most `limit` items."""
    return Field(max_length=limit)


def one_each(kinds: Any) -> Any:
    """A list of at most as many items as `kinds` (a Literal) has values."""
    return Field(max_length=len(get_args(kinds)))


class Strict(models.Strict):
    """Base for everything a person or an agency system writes: unknown fields are errors,
    and nothing is coerced ("yes" is not a bool, "1" is not a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Jurisdiction(Strict):
    state: StateCode
    county: Text | None = None


# --- payloads --------------------------------------------------------------------------------


class ChildProfile(Strict):
    date_of_birth: BirthDate
    sex: Sex
    risk_indicators: Annotated[tuple[RiskIndicator, ...], one_each(RiskIndicator)] = ()
    caseworker_id: Id | None = None
    supervisor_id: Id | None = None


class PlacementStarted(Strict):
    placement_id: Id
    setting: Setting
    provider_id: Id | None = None


class PlacementEnded(Strict):
    placement_id: Id
    reason: EndReason


class MissingDescription(Strict):
    name: Text
    aliases: Annotated[tuple[Text, ...], at_most(MAX_ALIASES)] = ()
    physical_description: MultiLineText | None = None
    clothing: LongText | None = None
    photo_url: (
        Annotated[
            str,
            StringConstraints(pattern=r"^https?://\S+$", max_length=2048),
            AfterValidator(require_printable),
        ]
        | None
    ) = None
    last_seen_location: LongText | None = None
    places_frequented: Annotated[tuple[Text, ...], at_most(MAX_PLACES_FREQUENTED)] = ()


class MissingOpened(Strict):
    episode_id: Id
    last_seen_at: Timestamp
    circumstances: Circumstances
    immediate_risks: Annotated[tuple[ImmediateRisk, ...], one_each(ImmediateRisk)] = ()
    description: MissingDescription | None = None


class LawEnforcementReported(Strict):
    episode_id: Id
    le_agency: Reference
    report_number: Reference
    ncic_entry_confirmed: bool
    ncic_declined: bool = False


class NcmecReported(Strict):
    episode_id: Id
    ncmec_case_number: Reference


class PartyNotified(Strict):
    episode_id: Id
    party: Party


class SearchEffort(Strict):
    episode_id: Id
    effort: Text


class StaffingHeld(Strict):
    episode_id: Id
    level: StaffingLevel


class MissingLocated(Strict):
    episode_id: Id
    located_at: Timestamp
    location_class: LocationClass | None = None


class DebriefCompleted(Strict):
    episode_id: Id
    factors: Annotated[tuple[Text, ...], at_most(MAX_FACTORS)] = ()


class CrimeDisclosed(Strict):
    episode_id: Id
    crimes: tuple[CrimeKind, ...] = Field(min_length=1, max_length=len(get_args(CrimeKind)))


class CrimeReported(Strict):
    episode_id: Id
    le_agency: Reference
    report_number: Reference


class ScreeningCompleted(Strict):
    episode_id: Id | None = None
    tool: ScreeningTool
    result: ScreeningResult


class TraffickingIdentified(Strict):
    status: Literal["suspected", "confirmed"]
    type: Literal["sex", "labor"]


class TraffickingReported(Strict):
    report_number: Reference


# --- envelopes -------------------------------------------------------------------------------


class EventBase(Strict):
    event_type: str
    event_id: Id
    schema_version: Literal[1]
    agency_id: AgencyId
    child_id: Id
    occurred_at: Timestamp
    jurisdiction: Jurisdiction

    @property
    def key(self) -> str:
        """The Kafka key: every event of one child lands on one partition, in order."""
        return f"{self.agency_id}:{self.child_id}"

    @model_validator(mode="after")
    def _within_size(self) -> Self:
        if len(event_bytes(self)) > MAX_EVENT_BYTES:
            raise PydanticCustomError("event_too_large", event_too_large_problem())
        return self


class ChildRegistered(EventBase):
    event_type: Literal["child.registered"]
    payload: ChildProfile


class ChildUpdated(EventBase):
    event_type: Literal["child.updated"]
    payload: ChildProfile


class PlacementStartedEvent(EventBase):
    event_type: Literal["placement.started"]
    payload: PlacementStarted


class PlacementEndedEvent(EventBase):
    event_type: Literal["placement.ended"]
    payload: PlacementEnded


class MissingOpenedEvent(EventBase):
    event_type: Literal["missing.opened"]
    payload: MissingOpened


class LawEnforcementReportedEvent(EventBase):
    event_type: Literal["missing.law_enforcement_reported"]
    payload: LawEnforcementReported


class NcmecReportedEvent(EventBase):
    event_type: Literal["missing.ncmec_reported"]
    payload: NcmecReported


class PartyNotifiedEvent(EventBase):
    event_type: Literal["missing.party_notified"]
    payload: PartyNotified


class SearchEffortEvent(EventBase):
    event_type: Literal["missing.search_effort"]
    payload: SearchEffort


class StaffingHeldEvent(EventBase):
    event_type: Literal["missing.staffing_held"]
    payload: StaffingHeld


class MissingLocatedEvent(EventBase):
    event_type: Literal["missing.located"]
    payload: MissingLocated


class DebriefCompletedEvent(EventBase):
    event_type: Literal["return.debrief_completed"]
    payload: DebriefCompleted


class CrimeDisclosedEvent(EventBase):
    event_type: Literal["return.crime_disclosed"]
    payload: CrimeDisclosed


class CrimeReportedEvent(EventBase):
    event_type: Literal["return.crime_reported"]
    payload: CrimeReported


class ScreeningCompletedEvent(EventBase):
    event_type: Literal["screening.completed"]
    payload: ScreeningCompleted


class TraffickingIdentifiedEvent(EventBase):
    event_type: Literal["trafficking.identified"]
    payload: TraffickingIdentified


class TraffickingReportedEvent(EventBase):
    event_type: Literal["trafficking.law_enforcement_reported"]
    payload: TraffickingReported


Event = Annotated[
    ChildRegistered
    | ChildUpdated
    | PlacementStartedEvent
    | PlacementEndedEvent
    | MissingOpenedEvent
    | LawEnforcementReportedEvent
    | NcmecReportedEvent
    | PartyNotifiedEvent
    | SearchEffortEvent
    | StaffingHeldEvent
    | MissingLocatedEvent
    | DebriefCompletedEvent
    | CrimeDisclosedEvent
    | CrimeReportedEvent
    | ScreeningCompletedEvent
    | TraffickingIdentifiedEvent
    | TraffickingReportedEvent,
    Field(discriminator="event_type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES: tuple[str, ...] = tuple(
    sorted(
        m.model_fields["event_type"].annotation.__args__[0]  # type: ignore[union-attr]  # Literal
        for m in EventBase.__subclasses__()
    )
)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field. `field` is a dotted path; no submitted value is included."""

    field: str
    problem: str
    type: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem, "type": self.type}


class EventInvalid(ValueError):
    """The bytes or object are not a valid Event. `errors` lists every problem found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """A one-line summary for a DLQ header or a log line: field paths and problems only."""
        return "; ".join(f"{e.field}: {e.problem}" for e in self.errors)[:1000]


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Turn pydantic errors into FieldErrors, dropping the union tag pydantic puts in paths.

    pydantic reports a field of a tagged union as ``('missing.opened', 'payload', 'x')``; the
    tag is the value of ``event_type``, not a field, so it is removed. An unknown field is
    reported at the object that holds it: its name is submitted text (it may be a person's name
    or a number), so it is never repeated. At most MAX_ERRORS problems are listed, then one
    saying how many more there are (a list of thousands of bad items is one body, not
    thousands of rows).
    """
    out: list[FieldError] = []
    seen: set[FieldError] = set()
    for err in exc.errors(include_input=False, include_url=False):
        loc = list(err["loc"])
        problem = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            loc, problem = loc[:-1], UNKNOWN_FIELD_PROBLEM
        loc = [p for p in loc if p not in EVENT_TYPES]
        path = ".".join(str(p) for p in [*prefix, *loc]) or "(root)"
        if err["type"] == "union_tag_invalid":
            problem = f"must be one of: {', '.join(EVENT_TYPES)}"
            path = ".".join(str(p) for p in [*prefix, *loc, "event_type"])
        elif err["type"] == "union_tag_not_found":
            problem = "Field required"
            path = ".".join(str(p) for p in [*prefix, *loc, "event_type"])
        found = FieldError(field=path, problem=problem, type=err["type"])
        if found not in seen:  # two unknown fields of one object are one problem
            seen.add(found)
            out.append(found)
    if len(out) > MAX_ERRORS:
        more = f"and {len(out) - MAX_ERRORS} more problems"
        out = [
            *out[:MAX_ERRORS],
            FieldError(".".join(map(str, prefix)) or "(root)", more, "too_many_errors"),
        ]
    return out


def received(now: datetime | None) -> dict[str, Any] | None:
    """The validation context for an event received at `now` (None: the clock)."""
    return {"now": now} if now is not None else None


def parse_event_obj(
    obj: Any, prefix: Sequence[str | int] = (), now: datetime | None = None
) -> Event:
    """Validate one decoded JSON value as an Event (JSON semantics: timestamps as RFC 3339
    strings, no other coercion) received at `now`. Raises EventInvalid with paths under
    `prefix`."""
    if not isinstance(obj, dict):
        path = ".".join(str(p) for p in prefix) or "(root)"
        raise EventInvalid([FieldError(path, "must be a JSON object", "model_type")])
    try:
        # Re-encoding lets pydantic apply JSON-mode rules to an already-decoded value.
        return EVENT_ADAPTER.validate_json(json.dumps(obj), context=received(now))
    except ValidationError as exc:
        raise EventInvalid(field_errors(exc, prefix)) from None


def check_depth(raw: bytes) -> None:
    """Raise EventInvalid if `raw` nests deeper than MAX_JSON_DEPTH."""
    if json_depth_exceeds(raw):
        problem = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        raise EventInvalid([FieldError("(root)", problem, "json_too_deep")])


def decode_json(raw: bytes) -> Any:
    """Decode UTF-8 JSON bytes. Raises EventInvalid naming the problem, never the content."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EventInvalid([FieldError("(root)", "body is not UTF-8", "json_invalid")]) from None
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON (line {exc.lineno}, column {exc.colno})"
        raise EventInvalid([FieldError("(root)", problem, "json_invalid")]) from None
    except (ValueError, RecursionError):  # e.g. an integer of more than 4,300 digits
        raise EventInvalid([FieldError("(root)", "not valid JSON", "json_invalid")]) from None


def parse_event(raw: bytes, now: datetime | None = None) -> Event:
    """Decode UTF-8 JSON bytes and validate them as an Event received at `now` (None: the
    clock). The same rules hold for ingest and for the rules worker's decoder. Raises
    EventInvalid."""
    check_depth(raw)
    try:
        # Fast path: one pass in pydantic-core over the bytes.
        return EVENT_ADAPTER.validate_json(raw, context=received(now))
    except ValidationError:
        pass  # fall through for the precise error (and to tell bad JSON from a bad event)
    return parse_event_obj(decode_json(raw), now=now)


def event_bytes(event: EventBase) -> bytes:
    """The canonical JSON encoding of an event, as written to care.events.v1."""
    return event.model_dump_json(exclude_none=True).encode()


# --- the published JSON Schema (docs/schemas/event.schema.json) ----------------------------

EVENT_SCHEMA_ID = "https://carealert.example/schemas/event.schema.json"
EVENT_SCHEMA_DESCRIPTION = (
    "One event an agency publishes (docs/contract.md, Event). Standard JSON Schema 2020-12; "
    "formats date and date-time are meant to be asserted. Rules the server checks that this "
    "schema cannot: occurred_at, last_seen_at and located_at not before 1900-01-01T00:00:00Z "
    "nor more than 1 hour after receipt; date_of_birth not before 1900-01-01 nor after the UTC "
    "date 1 hour after receipt; JSON nested at most 32 levels; the whole event at most "
    f"{MAX_EVENT_BYTES} bytes as compact JSON (every event this schema accepts is smaller: its "
    "lists and texts are bounded); the same event_id with other "
    "content for the same child is dead-lettered. Printable means Python's str.isprintable() "
    "with Unicode 14.0: the server refuses a character assigned only in a later Unicode version."
)

# Keywords for rules that pydantic enforces with a Python function, keyed by that function.
_PUBLISHED_PATTERNS: dict[Callable[..., Any], str] = {
    require_printable: PRINTABLE_PATTERN,
    _printable_lines: PRINTABLE_LINES_PATTERN,
    _rfc3339: TIMESTAMP_PATTERN,
    _iso_date: DATE_PATTERN,
}


class _PublishedJsonSchema(GenerateJsonSchema):
    """pydantic's schema, plus our validator functions as patterns and enums, and without
    OpenAPI's `discriminator` (the `oneOf` over `event_type` consts already decides)."""

    def function_after_schema(self, schema: Any) -> JsonSchemaValue:
        return _publish(schema["function"]["function"], super().function_after_schema(schema))

    def function_before_schema(self, schema: Any) -> JsonSchemaValue:
        return _publish(schema["function"]["function"], super().function_before_schema(schema))

    def tagged_union_schema(self, schema: Any) -> JsonSchemaValue:
        out = super().tagged_union_schema(schema)
        out.pop("discriminator", None)
        return out


def _publish(function: Callable[..., Any], schema: JsonSchemaValue) -> JsonSchemaValue:
    if function is _usps:
        return {"type": "string", "enum": sorted(USPS_STATES)}
    pattern = _PUBLISHED_PATTERNS.get(function)
    if pattern is None:
        return schema
    if "pattern" in schema:  # photo_url: both its own pattern and the printable one
        return {**schema, "allOf": [{"type": "string", "pattern": pattern}]}
    return {**schema, "pattern": pattern}


def event_json_schema() -> dict[str, Any]:
    """The Event contract as standard JSON Schema draft 2020-12, for agencies' validators."""
    schema = EVENT_ADAPTER.json_schema(schema_generator=_PublishedJsonSchema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": EVENT_SCHEMA_ID,
        "title": "Event",
        "description": EVENT_SCHEMA_DESCRIPTION,
        **schema,
    }
