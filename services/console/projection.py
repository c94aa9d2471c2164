"""The pure centre of the read model: one Kafka record → the writes it causes.

`project(topic, key, value)` decodes and validates the record against the contract and returns
the rows it writes, each an `Upsert` keyed by the contract's ids (or a `Delete`, for the tombstone
of a silence); applying the same writes again leaves the same rows (an upsert only ever sets values
the record carries). A record that cannot be decoded or is not valid raises `Unprojectable` with a
reason code (never the content: it may be a child's data). No I/O here: services.console.store
writes, services.console.projector reads Kafka.

What is mapped is only what a console shows (services.console.models), and the codes the
compliance report counts (services.report.dbsource): a child's name, description, date of birth,
risk indicators and an escalation's subject are never read into an upsert; an escalation's
evidence only as `safe_evidence` leaves it (scalars, without `age` and without any key about the
child's person), its `age` only as an age band; an event only as its type, time, ids,
jurisdiction and codes of the contract (a profile's sex, a placement's setting, a finding's
status).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.common import topics
from services.common.canary import is_canary
from services.common.escalations import Escalation
from services.common.events import (
    ChildRegistered,
    ChildUpdated,
    Event,
    EventInvalid,
    MissingLocatedEvent,
    MissingOpenedEvent,
    PartyNotifiedEvent,
    PlacementEndedEvent,
    PlacementStartedEvent,
    ScreeningCompletedEvent,
    StaffingHeldEvent,
    TraffickingIdentifiedEvent,
    parse_event,
)
from services.console.models import NOTE, SILENCE_REASON, Base, Scalar
from services.notify import wording
from services.notify.records import Ack, NotificationRecord
from services.notify.silences import Silence, printable_line
from services.report.facts import age_band

TOPICS: tuple[str, ...] = (
    topics.EVENTS,
    topics.ESCALATIONS,
    topics.NOTIFICATIONS,
    topics.ACKS,
    topics.SILENCES,
)
REASONS: tuple[str, ...] = (
    "unwritable",  # a value longer than its column, a NUL, a time without a zone
    "undecodable",
    "invalid_event",
    "invalid_escalation",
    "invalid_notification",
    "invalid_ack",
    "invalid_silence",
    "tombstone",
    "unknown_topic",
)


@dataclass(frozen=True)
class Upsert:
    """Insert `values` into `table`; on a row with the same `key` columns, overwrite only the
    `update` columns (none: keep the row as it is)."""

    table: str
    values: Mapping[str, Any]
    key: tuple[str, ...]
    update: tuple[str, ...]


@dataclass(frozen=True)
class Delete:
    """Delete the row of `table` whose key columns hold `key` (none: nothing to do)."""

    table: str
    key: Mapping[str, Any]


Write = Upsert | Delete


class Unprojectable(ValueError):
    """A record the read model cannot take; `reason` is one of REASONS (a code, never the
    record's content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def project(
    topic: str, key: bytes | None, value: bytes | None, now: datetime | None = None
) -> list[Write]:
    """The writes one record causes, in the order to apply them. `now`: when Kafka received the
    record (events' timestamps are checked against it); None: the clock. `key` is read only on
    care.silences.v1 (a compacted topic keyed by silence id, as notify's ledger reads it); every
    other record carries its ids in its value. Raises Unprojectable."""
    writes: list[Write]
    if topic == topics.SILENCES:
        writes = _silence(key, value)
    elif value is None:
        raise Unprojectable("tombstone")
    elif topic == topics.EVENTS:
        writes = _event(value, now)
    elif topic == topics.ESCALATIONS:
        writes = _escalation(value)
    elif topic == topics.NOTIFICATIONS:
        writes = _notification(value)
    elif topic == topics.ACKS:
        writes = _ack(value)
    else:
        raise Unprojectable("unknown_topic")
    if not all(writable(w) for w in writes):
        raise Unprojectable("unwritable")
    return writes


def writable(write: Write) -> bool:
    """Whether every value fits its column on every database the read model runs on (PostgreSQL
    enforces lengths and refuses NUL; SQLite does neither), and every time names its zone: a
    record that would fail the batch's transaction is skipped instead, so none stalls."""
    columns = Base.metadata.tables[write.table].c
    values = write.values if isinstance(write, Upsert) else write.key
    for name, value in values.items():
        if isinstance(value, str):
            length = getattr(columns[name].type, "length", None)
            if "\x00" in value or (length is not None and len(value) > length):
                return False
        elif isinstance(value, datetime) and value.tzinfo is None:
            return False
    return True


def _event(value: bytes, now: datetime | None) -> list[Write]:
    try:
        event = parse_event(value, now=now)
    except EventInvalid as exc:
        undecodable = any(e.type == "json_invalid" for e in exc.errors)
        raise Unprojectable("undecodable" if undecodable else "invalid_event") from None
    if is_canary(event.agency_id):
        return []
    return [*_child(event), _child_event(event)]


def _child_event(event: Event) -> Upsert:
    """The event as a line of the child's timeline: ids, type, time, jurisdiction and codes,
    nothing else."""
    placement = (
        event.payload if isinstance(event, PlacementStartedEvent | PlacementEndedEvent) else None
    )
    row = {
        "agency_id": event.agency_id,
        "event_id": event.event_id,
        "child_id": event.child_id,
        "episode_id": getattr(event.payload, "episode_id", None),
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "detail": _detail(event),
        "state": event.jurisdiction.state,
        "county": event.jurisdiction.county,
        "placement_id": placement.placement_id if placement is not None else None,
        "code": _code(event),
    }
    # An event id is one event (the contract refuses the same id with other content): the first
    # row stands.
    return Upsert("child_events", row, ("agency_id", "event_id"), ())


def _detail(event: Event) -> str | None:
    """The one code an event type carries that a timeline shows (a Literal of the contract,
    never free text)."""
    if isinstance(event, ScreeningCompletedEvent):
        return event.payload.result
    if isinstance(event, StaffingHeldEvent):
        return event.payload.level
    if isinstance(event, PartyNotifiedEvent):
        return event.payload.party
    return None


def _code(event: Event) -> str | None:
    """The code of the contract the report counts (a Literal, never free text), which no page
    shows: a profile's sex, a placement's setting, a trafficking finding's status."""
    if isinstance(event, ChildRegistered | ChildUpdated):
        return event.payload.sex
    if isinstance(event, PlacementStartedEvent):
        return event.payload.setting
    if isinstance(event, TraffickingIdentifiedEvent):
        return event.payload.status
    return None


def _child(event: Event) -> list[Write]:
    child = {
        "agency_id": event.agency_id,
        "child_id": event.child_id,
        "state": event.jurisdiction.state,
        "county": event.jurisdiction.county,
    }
    child_key = ("agency_id", "child_id")
    if isinstance(event, ChildRegistered | ChildUpdated):
        staff = {
            "caseworker_id": event.payload.caseworker_id,
            "supervisor_id": event.payload.supervisor_id,
        }
        return [Upsert("children", {**child, **staff}, child_key, ("state", "county", *staff))]
    # Any other event places the child; its staff stay what the last profile said.
    where = Upsert(
        "children",
        {**child, "caseworker_id": None, "supervisor_id": None},
        child_key,
        ("state", "county"),
    )
    episode_key = ("agency_id", "child_id", "episode_id")
    if isinstance(event, MissingOpenedEvent):
        opened = {
            "agency_id": event.agency_id,
            "episode_id": event.payload.episode_id,
            "child_id": event.child_id,
            "opened_at": event.occurred_at,
            "closed_at": None,
            "state": event.jurisdiction.state,
            "county": event.jurisdiction.county,
            "last_seen_at": event.payload.last_seen_at,
            "located_event_at": None,
        }
        reopened = ("opened_at", "state", "county", "last_seen_at")
        return [where, Upsert("episodes", opened, episode_key, reopened)]
    if isinstance(event, MissingLocatedEvent):
        closed = {
            "agency_id": event.agency_id,
            "episode_id": event.payload.episode_id,
            "child_id": event.child_id,
            "opened_at": None,
            "closed_at": event.payload.located_at,
            "state": None,
            "county": None,
            "last_seen_at": None,
            "located_event_at": event.occurred_at,
        }
        returned = ("closed_at", "located_event_at")
        return [where, Upsert("episodes", closed, episode_key, returned)]
    return [where]


def _json(value: bytes) -> Any:
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unprojectable("undecodable") from None


_DESCRIPTIVE = (
    "basis",
    "agency_id",
    "child_id",
    "episode_id",
    "rule_id",
    "severity",
    "action",
    "state",
    "county",
    "caseworker_id",
    "supervisor_id",
    "due_at",
    "trigger_event_id",
    "age_band",
)


# Evidence keys about the child's person: never stored, whatever their value.
_PERSONAL_KEY = re.compile(r"name|birth|dob|description|photo|address|location", re.IGNORECASE)
_EVIDENCE_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
EVIDENCE_TEXT = 64  # the longest text value kept


def safe_evidence(evidence: Mapping[str, Any]) -> dict[str, Scalar]:
    """What of an escalation's evidence the read model keeps: scalar values only (a printable
    text of at most 64 characters, an int, a finite float, a bool), under keys that are codes
    (letters, digits, `_.:-`, at most 64), without `age` and without any key that mentions a
    name, birth, dob, description, photo, address or location. Sorted by key."""
    kept: dict[str, Scalar] = {}
    for key in sorted(evidence):
        value = evidence[key]
        if (
            not _EVIDENCE_KEY.fullmatch(key)
            or key.lower() == "age"
            or _PERSONAL_KEY.search(key) is not None
        ):
            continue
        if isinstance(value, str):
            if len(value) <= EVIDENCE_TEXT and value.isprintable():
                kept[key] = value
        elif isinstance(value, bool | int):
            kept[key] = value
        elif isinstance(value, float) and math.isfinite(value):
            kept[key] = value
    return kept


def age_band_at_start(evidence: Mapping[str, Any]) -> str | None:
    """The child's age band at the duty's start, from the engine's `evidence.age` (the age in
    whole years at the triggering event's time, on the jurisdiction's calendar; absent: no date
    of birth on record, "unknown"). None for a duty that fired on the clock (`fired_at` in its
    evidence: its age is the firing time's). The age itself is never stored."""
    if "fired_at" in evidence:
        return None
    age = evidence.get("age")
    return age_band(age if isinstance(age, int) and not isinstance(age, bool) else None)


def deadline_of(esc: Escalation) -> datetime | None:
    """The deadline the console counts down to: the escalation's `due_at`, or for an overdue
    step (which has none: it is already late) the deadline it missed, `evidence.was_due_at`."""
    if esc.due_at is not None:
        return esc.due_at
    return wording.instant(esc.evidence.get("was_due_at"))


def _escalation(value: bytes) -> list[Write]:
    obj = _json(value)
    try:
        esc = Escalation.model_validate_json(json.dumps(obj)) if isinstance(obj, dict) else None
    except (ValidationError, ValueError):
        esc = None
    if esc is None:
        raise Unprojectable("invalid_escalation")
    if is_canary(esc.agency_id):
        return []
    firing = esc.status == "firing"
    row = {
        "escalation_id": esc.escalation_id,
        "agency_id": esc.agency_id,
        "child_id": esc.child_id,
        "episode_id": esc.episode_id,
        "rule_id": esc.rule_id,
        "severity": esc.severity,
        "status": esc.status,
        "action": esc.action,
        "state": esc.jurisdiction.state,
        "county": esc.jurisdiction.county,
        "caseworker_id": esc.caseworker_id,
        "supervisor_id": esc.supervisor_id,
        "due_at": deadline_of(esc),
        "fired_at": esc.created_at if firing else None,
        "resolved_at": None if firing else esc.created_at,
        "basis": esc.basis,
        "evidence": json.dumps(safe_evidence(esc.evidence), ensure_ascii=False),
        "policy_version": esc.policy_version,
        "trigger_event_id": esc.triggered_by[0] if esc.triggered_by else None,
        "resolved_by": None if firing or not esc.triggered_by else esc.triggered_by[-1],
        "discharged_at": None if firing else wording.instant(esc.evidence.get("discharged_at")),
        "age_band": age_band_at_start(esc.evidence),
    }
    # Resolved is final: a firing record (even one applied again) never reopens the row, so
    # the order in which a batch is applied twice does not matter. Its evidence (which says
    # when and whether on time the duty was discharged) stays too: a firing record's evidence
    # is written only by the insert of a new row. The policy version is the firing record's
    # (the one that computed the deadline) once it is applied.
    update = (
        (*_DESCRIPTIVE, "fired_at", "policy_version")
        if firing
        else (*_DESCRIPTIVE, "status", "resolved_at", "evidence", "resolved_by", "discharged_at")
    )
    return [Upsert("escalations", row, ("escalation_id",), update)]


def _notification(value: bytes) -> list[Write]:
    obj = _json(value)
    try:
        rec = NotificationRecord.model_validate(obj) if isinstance(obj, dict) else None
    except (ValidationError, ValueError):
        rec = None
    if rec is None:
        raise Unprojectable("invalid_notification")
    row = {
        "notification_id": rec.notification_id,
        "status": rec.status,
        "attempt": rec.attempt,
        "escalation_id": rec.escalation_id,
        "receiver": rec.receiver,
        "recipient_class": rec.recipient_class,
        "channel": rec.channel,
        "step": rec.step,
        "escalation_status": rec.escalation_status,
        "at": rec.at,
        "reason": rec.reason,
        "person_id": rec.person_id,
        "silence_id": rec.silence_id,
        "redirected_to": rec.redirected_to,
        "digest_id": rec.digest_id,
        "agency_id": rec.agency_id,
    }
    key = ("notification_id", "status", "attempt")
    return [Upsert("notifications", row, key, tuple(c for c in row if c not in key))]


def _one_line(text: str | None, longest: int) -> bool:
    return text is not None and 0 < len(text) <= longest and text.isprintable()


def _ack(value: bytes) -> list[Write]:
    obj = _json(value)
    try:
        ack = Ack.model_validate(obj) if isinstance(obj, dict) else None
    except (ValidationError, ValueError):
        ack = None
    if ack is None:
        raise Unprojectable("invalid_ack")
    if ack.kind == "note":
        # A note added in the console: it acknowledges nothing, so it is never an `acks` row.
        if ack.note_id is None or not _one_line(ack.note, NOTE):
            raise Unprojectable("invalid_ack")
        note = {
            "escalation_id": ack.escalation_id,
            "note_id": ack.note_id,
            "person_id": ack.person_id,
            "person_agency_id": ack.agency_id,
            "at": ack.acked_at,
            "note": ack.note,
        }
        # One per note_id (chosen once per form): the first stands.
        return [Upsert("notes", note, ("escalation_id", "note_id"), ())]
    row = {
        "escalation_id": ack.escalation_id,
        "who": ack.who,
        "receiver": ack.receiver,
        "person_id": ack.person_id,
        "person_agency_id": ack.agency_id,
        "via": ack.via,
        "stops": ack.stops,
        "acked_at": ack.acked_at,
        # A note that is not one printable line of at most 500 characters (notify takes no
        # other) is left out; the acknowledgement itself is never lost for it.
        "note": ack.note if _one_line(ack.note, NOTE) else None,
        "kind": ack.kind,
    }
    # One per (escalation, who): the first stands, as notify answers it (services.notify).
    return [Upsert("acks", row, ("escalation_id", "who"), ())]


def _silence(key: bytes | None, value: bytes | None) -> list[Write]:
    """As notify's ledger reads care.silences.v1: a record without a key is no silence; a
    tombstone removes the key's silence; any other record is the key's silence as it now is
    (written again with `expired_at` when expired)."""
    if key is None:
        raise Unprojectable("invalid_silence")
    try:
        silence_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprojectable("undecodable") from None
    if value is None:
        return [Delete("silences", {"silence_id": silence_id})]
    obj = _json(value)
    try:
        silence = Silence.model_validate(obj) if isinstance(obj, dict) else None
    except (ValidationError, ValueError):
        silence = None
    # The API and the CLI key a silence by its id; a record under another key is not theirs.
    if silence is None or silence.silence_id != silence_id:
        raise Unprojectable("invalid_silence")
    if is_canary(silence.agency_id):
        return []
    matchers = [
        *({"label": k, "op": "=", "value": v} for k, v in silence.match.items()),
        *({"label": k, "op": "=~", "value": v} for k, v in silence.match_re.items()),
    ]
    matchers.sort(key=lambda m: (m["label"], m["op"]))
    reason = silence.reason
    row = {
        "silence_id": silence.silence_id,
        "agency_id": silence.agency_id,
        "kind": silence.kind,
        "receiver": silence.receiver,
        "matchers": json.dumps(matchers, ensure_ascii=False),
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "reason": reason if len(reason) <= SILENCE_REASON and printable_line(reason) else None,
        "created_by": silence.created_by,
        "created_at": silence.created_at,
        "expired_at": silence.expired_at,
        "expired_by": silence.expired_by,
    }
    key_columns = ("silence_id",)
    return [Upsert("silences", row, key_columns, tuple(c for c in row if c not in key_columns))]
