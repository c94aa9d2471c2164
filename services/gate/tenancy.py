"""Whose record is it: the tenancy judgement of one record of an agency input topic. Pure.

The agency is the one whose topic the record was written to (only that agency's principal may
write it). The record passes when its value is a JSON object whose `agency_id` is that agency
and which names a `child_id`; it then goes to care.events.v1 keyed `{agency_id}:{child_id}`.
Everything else about the event (its type, fields, timestamps) is the rules worker's to check:
it dead-letters an invalid event with the reason. Reasons here name fields and problems,
never values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from services.common import topics
from services.common.canary import is_canary
from services.common.dlq import TOMBSTONE_REASON
from services.common.unreadable import stand_in_reason

REASONS: Final = (
    "undecodable",
    "no_agency_id",
    "agency_mismatch",
    "no_child_id",
    "ambiguous_tenancy",
    "reserved_agency",
    "not_an_input_topic",
    "tombstone",
    "unreadable_record",
    "forward_refused",
    "internal_error",
)
"""Every dead-letter reason code of the gate (the `reason` label of its DLQ metric)."""

TENANCY_FIELDS: Final = ("agency_id", "child_id")


@dataclass(frozen=True)
class Forward:
    """The record goes on to care.events.v1 with this key (`{agency_id}:{child_id}`)."""

    key: bytes


@dataclass(frozen=True)
class Refused:
    """The record goes to care.events.dlq: `code` (the metric's reason label) and `reason`
    (the dead letter's `error` header; never a value from the record)."""

    code: str
    reason: str


Verdict = Forward | Refused


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers which of its names appeared more than once."""

    repeated: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        names = [name for name, _ in pairs]
        obj.repeated = frozenset(name for name in obj if names.count(name) > 1)
    return obj


def _decode(value: bytes) -> Any:
    """The JSON value of UTF-8 bytes; ValueError if it is not one."""
    try:
        return json.loads(value.decode("utf-8"), object_pairs_hook=_object)
    except (UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ValueError("not UTF-8 JSON") from exc


def judge(
    topic: str, value: bytes | None, headers: Iterable[tuple[str, bytes | None]] = ()
) -> Verdict:
    """Forward (with the key for care.events.v1) or Refused (why), for one record of `topic`."""
    unreadable = stand_in_reason(headers)
    if unreadable is not None:  # a stand-in for a record no client can decode
        return Refused("unreadable_record", unreadable)
    agency = topics.agency_of_input(topic)
    if agency is None:
        return Refused("not_an_input_topic", "the record's topic is not an agency input topic")
    if is_canary(agency):
        return Refused("reserved_agency", "the canary agency posts through ingest only")
    if value is None:
        return Refused("tombstone", TOMBSTONE_REASON)
    try:
        event = _decode(value)
    except ValueError:
        return Refused("undecodable", "not UTF-8 JSON")
    if not isinstance(event, _Object):
        return Refused("no_agency_id", "the value is not a JSON object")
    if event.repeated.intersection(TENANCY_FIELDS):
        return Refused("ambiguous_tenancy", "agency_id or child_id appears more than once")
    if not isinstance(event.get("agency_id"), str):
        return Refused("no_agency_id", "agency_id: missing or not a string")
    if event["agency_id"] != agency:
        return Refused("agency_mismatch", "agency_id is not the agency of the topic")
    child = event.get("child_id")
    if not isinstance(child, str) or not child:
        return Refused("no_child_id", "child_id: missing, empty or not a string")
    try:
        return Forward(f"{agency}:{child}".encode())
    except UnicodeEncodeError:  # a lone surrogate escape ("\\ud800"): no key can be made of it
        return Refused("no_child_id", "child_id: not valid Unicode")
