"""The Event contract: every event_type accepts its documented payload and rejects bad input
with the exact field path, without echoing values."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from services.common.events import (
    EVENT_TYPES,
    EventInvalid,
    decode_json,
    event_bytes,
    parse_event,
    parse_event_obj,
)

T = "2026-11-24T02:10:00Z"

VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "child.registered": {
        "date_of_birth": "2011-03-04",
        "sex": "female",
        "risk_indicators": ["substance_use", "prior_trafficking_allegation"],
        "caseworker_id": "W-1",
        "supervisor_id": "S-1",
    },
    "child.updated": {"date_of_birth": "2011-03-04", "sex": "unknown"},
    "placement.started": {"placement_id": "P-1", "setting": "group_home", "provider_id": "PR-9"},
    "placement.ended": {"placement_id": "P-1", "reason": "runaway"},
    "missing.opened": {
        "episode_id": "E-1",
        "last_seen_at": "2026-11-24T01:00:00-06:00",
        "circumstances": "runaway",
        "immediate_risks": ["with_dangerous_person", "medical_need"],
        "description": {
            "name": "Jane Doe",
            "aliases": ["JJ"],
            "physical_description": "5'4\", slim",
            "clothing": "red hoodie",
            "photo_url": "https://example.invalid/p.jpg",
            "last_seen_location": "bus station",
            "places_frequented": ["mall"],
        },
    },
    "missing.law_enforcement_reported": {
        "episode_id": "E-1",
        "le_agency": "KCPD",
        "report_number": "R-1",
        "ncic_entry_confirmed": False,
        "ncic_declined": True,
    },
    "missing.ncmec_reported": {"episode_id": "E-1", "ncmec_case_number": "N-1"},
    "missing.party_notified": {"episode_id": "E-1", "party": "guardian_ad_litem"},
    "missing.search_effort": {"episode_id": "E-1", "effort": "contact_friends"},
    "missing.staffing_held": {"episode_id": "E-1", "level": "supervisor"},
    "missing.located": {
        "episode_id": "E-1",
        "located_at": "2026-11-25T10:00:00Z",
        "location_class": "shelter",
    },
    "return.debrief_completed": {"episode_id": "E-1", "factors": ["conflict_in_placement"]},
    "screening.completed": {"tool": "cse_it", "result": "clear_concern"},
    "trafficking.identified": {"status": "suspected", "type": "sex"},
    "trafficking.law_enforcement_reported": {"report_number": "R-2"},
}


def envelope(event_type: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": "5b0c6c1e-8a8e-4f5e-9a57-0c2b3f1f7a10",
        "event_type": event_type,
        "schema_version": 1,
        "agency_id": "demo-agency",
        "child_id": "C-100234",
        "occurred_at": T,
        "jurisdiction": {"state": "MO", "county": "Jackson"},
        "payload": copy.deepcopy(VALID_PAYLOADS[event_type] if payload is None else payload),
    }


def errors_of(obj: Any) -> list[tuple[str, str]]:
    with pytest.raises(EventInvalid) as info:
        parse_event_obj(obj)
    return [(e.field, e.type) for e in info.value.errors]


def test_every_contract_event_type_has_a_valid_example() -> None:
    assert set(VALID_PAYLOADS) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(VALID_PAYLOADS))
def test_valid_event_parses_and_round_trips(event_type: str) -> None:
    event = parse_event(json.dumps(envelope(event_type)).encode())
    assert event.event_type == event_type
    assert event.key == "demo-agency:C-100234"
    again = parse_event(event_bytes(event))
    assert again == event


@pytest.mark.parametrize("event_type", sorted(VALID_PAYLOADS))
def test_unknown_payload_field_is_rejected(event_type: str) -> None:
    obj = envelope(event_type)
    obj["payload"]["surprise"] = 1
    assert errors_of(obj) == [("payload.surprise", "extra_forbidden")]


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("child.registered", "date_of_birth"),
        ("child.registered", "sex"),
        ("placement.started", "setting"),
        ("placement.ended", "reason"),
        ("missing.opened", "episode_id"),
        ("missing.opened", "last_seen_at"),
        ("missing.opened", "circumstances"),
        ("missing.law_enforcement_reported", "ncic_entry_confirmed"),
        ("missing.ncmec_reported", "ncmec_case_number"),
        ("missing.party_notified", "party"),
        ("missing.search_effort", "effort"),
        ("missing.staffing_held", "level"),
        ("missing.located", "located_at"),
        ("return.debrief_completed", "episode_id"),
        ("screening.completed", "result"),
        ("trafficking.identified", "type"),
        ("trafficking.law_enforcement_reported", "report_number"),
    ],
)
def test_missing_required_payload_field_is_named(event_type: str, field: str) -> None:
    obj = envelope(event_type)
    del obj["payload"][field]
    assert errors_of(obj) == [(f"payload.{field}", "missing")]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda o: o.update(schema_version=2), [("schema_version", "literal_error")]),
        (lambda o: o.update(schema_version="1"), [("schema_version", "literal_error")]),
        (lambda o: o.update(agency_id="Demo Agency"), [("agency_id", "string_pattern_mismatch")]),
        (lambda o: o.update(agency_id="d"), [("agency_id", "string_pattern_mismatch")]),
        (lambda o: o.update(child_id=""), [("child_id", "string_too_short")]),
        (lambda o: o.update(event_id="x" * 129), [("event_id", "string_too_long")]),
        (
            lambda o: o.update(occurred_at="2026-11-24T02:10:00"),
            [("occurred_at", "timezone_aware")],
        ),
        (lambda o: o.update(occurred_at="yesterday"), [("occurred_at", "datetime_parsing")]),
        (lambda o: o["jurisdiction"].update(state="ZZ"), [("jurisdiction.state", "value_error")]),
        (
            lambda o: o["jurisdiction"].update(state="mo"),
            [("jurisdiction.state", "string_pattern_mismatch")],
        ),
        (lambda o: o.update(event_type="missing.closed"), [("event_type", "union_tag_invalid")]),
        (lambda o: o.pop("event_type"), [("event_type", "union_tag_not_found")]),
        (lambda o: o.update(extra=True), [("extra", "extra_forbidden")]),
        (
            lambda o: o["payload"].update(circumstances="lost"),
            [("payload.circumstances", "literal_error")],
        ),
        (
            lambda o: o["payload"].update(immediate_risks=["bad"]),
            [("payload.immediate_risks.0", "literal_error")],
        ),
        (
            lambda o: o["payload"]["description"].update(name=""),
            [("payload.description.name", "string_too_short")],
        ),
        (
            lambda o: o["payload"]["description"].update(photo_url="javascript:x"),
            [("payload.description.photo_url", "string_pattern_mismatch")],
        ),
    ],
)
def test_invalid_envelope_fields_are_named(mutate: Any, expected: list[tuple[str, str]]) -> None:
    obj = envelope("missing.opened")
    mutate(obj)
    assert errors_of(obj) == expected


def test_bool_is_not_coerced_from_strings() -> None:
    obj = envelope("missing.law_enforcement_reported")
    obj["payload"]["ncic_entry_confirmed"] = "yes"
    assert errors_of(obj) == [("payload.ncic_entry_confirmed", "bool_type")]


def test_every_error_is_reported_at_once() -> None:
    obj = envelope("missing.opened")
    del obj["child_id"]
    obj["payload"]["circumstances"] = "lost"
    assert errors_of(obj) == [("child_id", "missing"), ("payload.circumstances", "literal_error")]


def test_errors_never_echo_submitted_values() -> None:
    obj = envelope("missing.opened")
    obj["payload"]["description"]["name"] = ""
    obj["payload"]["description"]["surprise"] = "Jane Secret-Name"
    obj["child_id"] = "Jane Secret-Name" * 20
    with pytest.raises(EventInvalid) as info:
        parse_event_obj(obj)
    assert "Secret" not in str(info.value)
    assert "Secret" not in info.value.reason
    assert all("Secret" not in str(e.as_dict()) for e in info.value.errors)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{", "not valid JSON (line 1, column 2)"),
        (b"\xff\xfe", "body is not UTF-8"),
    ],
)
def test_undecodable_bytes(raw: bytes, problem: str) -> None:
    with pytest.raises(EventInvalid) as info:
        decode_json(raw)
    assert [(e.field, e.problem) for e in info.value.errors] == [("(root)", problem)]


def test_non_object_is_rejected() -> None:
    with pytest.raises(EventInvalid) as info:
        parse_event(b"[1, 2]")
    assert info.value.reason == "(root): must be a JSON object"


def test_key_is_agency_and_child() -> None:
    event = parse_event_obj(envelope("placement.started"))
    assert event.key == "demo-agency:C-100234"


def test_committed_json_schema_is_current(tmp_path: Any) -> None:
    """docs/schemas/event.schema.json is what `carealert schemas` writes today."""
    from pathlib import Path

    from services.cli import main

    assert main(["schemas", str(tmp_path)]) == 0
    committed = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "event.schema.json"
    assert (tmp_path / "event.schema.json").read_text() == committed.read_text()
