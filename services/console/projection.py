"""The pure centre of the read model: one Kafka record → the upserts it causes.

`project(topic, key, value)` decodes and validates the record against the contract and returns
the rows it writes, each an `Upsert` keyed by the contract's ids; applying the same upserts again
leaves the same rows (an upsert only ever sets values the record carries). A record that cannot be
decoded or is not valid raises `Unprojectable` with a reason code (never the content: it may be a
child's data). No I/O here: services.console.store writes the upserts, services.console.projector
reads Kafka.

What is mapped is only what a console shows (services.console.models): a child's name,
description, date of birth, sex, risk indicators, an escalation's subject and evidence and an
acknowledgement's note are never read into an upsert.
"""

from __future__ import annotations

import json
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
    EventInvalid,
    MissingLocatedEvent,
    MissingOpenedEvent,
    parse_event,
)
from services.console.models import Base
from services.notify.records import Ack, NotificationRecord

TOPICS: tuple[str, ...] = (topics.EVENTS, topics.ESCALATIONS, topics.NOTIFICATIONS, topics.ACKS)
REASONS: tuple[str, ...] = (
    "unwritable",  # a value longer than its column, a NUL, a time without a zone
    "undecodable",
    "invalid_event",
    "invalid_escalation",
    "invalid_notification",
    "invalid_ack",
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


class Unprojectable(ValueError):
    """A record the read model cannot take; `reason` is one of REASONS (a code, never the
    record's content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def project(
    topic: str, key: bytes | None, value: bytes | None, now: datetime | None = None
) -> list[Upsert]:
    """The upserts one record causes, in the order to apply them. `now`: when Kafka received the
    record (events' timestamps are checked against it); None: the clock. `key` is not needed:
    every id is in the value. Raises Unprojectable."""
    del key  # the value carries every id the rows are keyed by
    if value is None:
        raise Unprojectable("tombstone")
    if topic == topics.EVENTS:
        upserts = _event(value, now)
    elif topic == topics.ESCALATIONS:
        upserts = _escalation(value)
    elif topic == topics.NOTIFICATIONS:
        upserts = _notification(value)
    elif topic == topics.ACKS:
        upserts = _ack(value)
    else:
        raise Unprojectable("unknown_topic")
    if not all(writable(u) for u in upserts):
        raise Unprojectable("unwritable")
    return upserts


def writable(upsert: Upsert) -> bool:
    """Whether every value fits its column on every database the read model runs on (PostgreSQL
    enforces lengths and refuses NUL; SQLite does neither), and every time names its zone: a
    record that would fail the batch's transaction is skipped instead, so none stalls."""
    columns = Base.metadata.tables[upsert.table].c
    for name, value in upsert.values.items():
        if isinstance(value, str):
            length = getattr(columns[name].type, "length", None)
            if "\x00" in value or (length is not None and len(value) > length):
                return False
        elif isinstance(value, datetime) and value.tzinfo is None:
            return False
    return True


def _event(value: bytes, now: datetime | None) -> list[Upsert]:
    try:
        event = parse_event(value, now=now)
    except EventInvalid as exc:
        undecodable = any(e.type == "json_invalid" for e in exc.errors)
        raise Unprojectable("undecodable" if undecodable else "invalid_event") from None
    if is_canary(event.agency_id):
        return []
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
    episode_key = ("agency_id", "episode_id")
    if isinstance(event, MissingOpenedEvent):
        opened = {
            "agency_id": event.agency_id,
            "episode_id": event.payload.episode_id,
            "child_id": event.child_id,
            "opened_at": event.occurred_at,
            "closed_at": None,
        }
        return [where, Upsert("episodes", opened, episode_key, ("child_id", "opened_at"))]
    if isinstance(event, MissingLocatedEvent):
        closed = {
            "agency_id": event.agency_id,
            "episode_id": event.payload.episode_id,
            "child_id": event.child_id,
            "opened_at": None,
            "closed_at": event.payload.located_at,
        }
        return [where, Upsert("episodes", closed, episode_key, ("child_id", "closed_at"))]
    return [where]


def _json(value: bytes) -> Any:
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unprojectable("undecodable") from None


_DESCRIPTIVE = (
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
)


def _escalation(value: bytes) -> list[Upsert]:
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
        "due_at": esc.due_at,
        "fired_at": esc.created_at if firing else None,
        "resolved_at": None if firing else esc.created_at,
    }
    # Resolved is final: a firing record (even one applied again) never reopens the row, so
    # the order in which a batch is applied twice does not matter.
    update = (*_DESCRIPTIVE, "fired_at") if firing else (*_DESCRIPTIVE, "status", "resolved_at")
    return [Upsert("escalations", row, ("escalation_id",), update)]


def _notification(value: bytes) -> list[Upsert]:
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


def _ack(value: bytes) -> list[Upsert]:
    obj = _json(value)
    try:
        ack = Ack.model_validate(obj) if isinstance(obj, dict) else None
    except (ValidationError, ValueError):
        ack = None
    if ack is None:
        raise Unprojectable("invalid_ack")
    row = {
        "escalation_id": ack.escalation_id,
        "who": ack.who,
        "receiver": ack.receiver,
        "person_id": ack.person_id,
        "person_agency_id": ack.agency_id,
        "via": ack.via,
        "stops": ack.stops,
        "acked_at": ack.acked_at,
    }
    # One per (escalation, who): the first stands, as notify answers it (services.notify).
    return [Upsert("acks", row, ("escalation_id", "who"), ())]
