"""Bounded events (docs/contract.md, "Bounded events"): every list and text of an event has a
maximum, and so has the whole event, so that what rules writes because of one event stays far
below what Kafka takes. Errors name the field and the problem, never a value or an unknown
field's name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common import events
from services.common.events import (
    MAX_ERRORS,
    MAX_EVENT_BYTES,
    UNKNOWN_FIELD_PROBLEM,
    EventInvalid,
    event_bytes,
    parse_event,
    parse_event_obj,
)
from tests.unit.test_events import envelope

RECEIVED = datetime(2026, 11, 26, tzinfo=UTC)
RISKS = [
    "with_dangerous_person",
    "dangerous_situation",
    "suspected_trafficking",
    "out_of_character",
    "medical_need",
    "incapacity",
]
INDICATORS = [
    "prior_trafficking_allegation",
    "sexual_abuse_history",
    "substance_use",
    "developmental_disability",
    "pregnant",
    "needs_medication",
]
CRIMES = [
    "sex_trafficking",
    "labor_trafficking",
    "sexual_assault",
    "physical_assault",
    "kidnapping",
    "robbery",
    "other",
]


def put(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target = obj
    for part in parents:
        target = target[part]
    target[last] = value
    return obj


def problems(obj: Any) -> list[tuple[str, str, str]]:
    with pytest.raises(EventInvalid) as info:
        parse_event(json.dumps(obj).encode(), now=RECEIVED)
    return [(e.field, e.type, e.problem) for e in info.value.errors]


# (event type, field path, the longest list accepted, one item more)
LISTS = [
    ("child.registered", "payload.risk_indicators", INDICATORS, [*INDICATORS, "pregnant"]),
    ("missing.opened", "payload.immediate_risks", RISKS, [*RISKS, "incapacity"]),
    ("return.crime_disclosed", "payload.crimes", CRIMES, [*CRIMES, "other"]),
    ("return.debrief_completed", "payload.factors", ["f"] * 20, ["f"] * 21),
    ("missing.opened", "payload.description.aliases", ["JJ"] * 10, ["JJ"] * 11),
    ("missing.opened", "payload.description.places_frequented", ["mall"] * 20, ["mall"] * 21),
]


@pytest.mark.parametrize(("event_type", "path", "longest", "too_long"), LISTS)
def test_every_list_is_bounded(
    event_type: str, path: str, longest: list[str], too_long: list[str]
) -> None:
    parse_event(json.dumps(put(envelope(event_type), path, longest)).encode(), now=RECEIVED)
    [(field, kind, problem)] = problems(put(envelope(event_type), path, too_long))
    assert (field, kind) == (path, "too_long")
    assert f"at most {len(longest)} items" in problem


def test_the_security_tests_events_are_refused_with_one_error_each() -> None:
    """The two 202s the security test found: 58,000 copies of one risk indicator, and 3,960
    aliases of 250 characters (a body of about 1 MB)."""
    indicators = put(envelope("child.registered"), "payload.risk_indicators", ["pregnant"] * 58000)
    assert [(f, t) for f, t, _ in problems(indicators)] == [("payload.risk_indicators", "too_long")]
    aliases = put(envelope("missing.opened"), "payload.description.aliases", ["A" * 250] * 3960)
    assert len(json.dumps(aliases)) > 1_000_000
    assert [(f, t) for f, t, _ in problems(aliases)] == [
        ("payload.description.aliases", "too_long")
    ]


@pytest.mark.parametrize(
    ("path", "longest"),
    [
        ("payload.description.name", 256),
        ("payload.description.physical_description", 4096),
        ("payload.description.clothing", 4096),
        ("payload.description.last_seen_location", 4096),
        ("payload.description.aliases", 256),
        ("payload.description.places_frequented", 256),
        ("jurisdiction.county", 256),
        ("child_id", 128),
    ],
)
def test_every_text_is_bounded(path: str, longest: int) -> None:
    def text(n: int) -> Any:
        return [("x" * n)] if path.endswith(("aliases", "places_frequented")) else "x" * n

    parse_event(json.dumps(put(envelope("missing.opened"), path, text(longest))).encode())
    [(field, kind, _)] = problems(put(envelope("missing.opened"), path, text(longest + 1)))
    assert kind == "string_too_long"
    assert field.startswith(path)


def largest_event(char: str) -> dict[str, Any]:
    """A missing.opened with every list and text at its longest, written in `char`."""
    obj = envelope("missing.opened")
    for path, n in [
        ("event_id", 128),
        ("child_id", 128),
        ("jurisdiction.county", 256),
        ("payload.episode_id", 128),
        ("payload.description.name", 256),
        ("payload.description.physical_description", 4096),
        ("payload.description.clothing", 4096),
        ("payload.description.last_seen_location", 4096),
    ]:
        put(obj, path, char * n)
    put(obj, "agency_id", "a" * 64)
    put(obj, "occurred_at", "2026-11-24T02:10:00.123456+05:45")
    put(obj, "payload.immediate_risks", RISKS)
    put(obj, "payload.description.aliases", [char * 256] * 10)
    put(obj, "payload.description.places_frequented", [char * 256] * 20)
    put(obj, "payload.description.photo_url", "https://" + char * 2040)
    return obj


@pytest.mark.parametrize("char", ["x", '"', "é", "€", "\U0001f600"])
def test_every_event_the_field_limits_allow_is_within_the_whole_event_limit(char: str) -> None:
    """So the whole-event limit refuses nothing the published schema accepts (the largest, in
    4-byte characters, is about 92 KB); a field added without a bound would break this."""
    event = parse_event_obj(largest_event(char), now=RECEIVED)
    assert len(event_bytes(event)) <= MAX_EVENT_BYTES
    assert MAX_EVENT_BYTES * 7 < 1_000_000  # what rules derives stays far below Kafka's limit


def test_an_event_over_the_whole_event_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    obj = largest_event("x")
    size = len(event_bytes(parse_event_obj(obj, now=RECEIVED)))
    monkeypatch.setattr(events, "MAX_EVENT_BYTES", size - 1)
    problem = f"the event is larger than {size - 1} bytes (as compact JSON)"
    assert problems(obj) == [("(root)", "event_too_large", problem)]
    with pytest.raises(EventInvalid) as info:
        parse_event_obj(obj, now=RECEIVED)  # a batch's events are checked the same way
    assert info.value.reason == f"(root): {problem}"
    monkeypatch.setattr(events, "MAX_EVENT_BYTES", size)
    parse_event_obj(obj, now=RECEIVED)


def test_whitespace_does_not_count_toward_the_whole_event_limit() -> None:
    """The limit is on the event (its compact JSON), not on how a producer spaced it out."""
    padded = json.dumps(envelope("missing.opened"), indent=MAX_EVENT_BYTES // 16).encode()
    assert len(padded) > MAX_EVENT_BYTES
    parse_event(padded, now=RECEIVED)


SECRET = "Jane Marie Doe, SSN 123-45-6789"


@pytest.mark.parametrize("where", ["payload", "jurisdiction", "payload.description", "(root)"])
def test_an_unknown_field_is_reported_without_its_name(where: str) -> None:
    obj = envelope("missing.opened")
    target = obj
    for part in [] if where == "(root)" else where.split("."):
        target = target[part]
    target[SECRET] = "x"
    target["also_unknown"] = "y"
    with pytest.raises(EventInvalid) as info:
        parse_event(json.dumps(obj).encode(), now=RECEIVED)
    assert [e.as_dict() for e in info.value.errors] == [
        {"field": where, "problem": UNKNOWN_FIELD_PROBLEM, "type": "extra_forbidden"}
    ]
    for text in (info.value.reason, str(info.value), repr(info.value.errors)):
        assert "Jane" not in text and "6789" not in text and "also_unknown" not in text


def test_at_most_max_errors_are_listed() -> None:
    obj = put(envelope("child.registered"), "payload.risk_indicators", ["nope"] * 5000)
    found = problems(obj)
    assert len(found) == MAX_ERRORS + 1
    assert found[-1] == ("(root)", "too_many_errors", f"and {5000 - MAX_ERRORS} more problems")
    assert found[0][:2] == ("payload.risk_indicators.0", "literal_error")
