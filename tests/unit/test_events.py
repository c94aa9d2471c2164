"""The Event contract: every event_type accepts its documented payload and rejects bad input
with the exact field path, without echoing values."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.events import (
    DATE_PROBLEM,
    EVENT_TYPES,
    MAX_JSON_DEPTH,
    PRINTABLE_PROBLEM,
    TIMESTAMP_PROBLEM,
    EventInvalid,
    decode_json,
    event_bytes,
    json_depth_exceeds,
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
    "return.crime_disclosed": {"episode_id": "E-1", "crimes": ["sexual_assault", "robbery"]},
    "return.crime_reported": {"episode_id": "E-1", "le_agency": "HPD", "report_number": "R-3"},
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
    assert errors_of(obj) == [("payload", "extra_forbidden")]


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
        ("return.crime_disclosed", "crimes"),
        ("return.crime_reported", "report_number"),
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
            [("occurred_at", "datetime_parsing")],
        ),
        (lambda o: o.update(occurred_at="yesterday"), [("occurred_at", "datetime_parsing")]),
        (lambda o: o["jurisdiction"].update(state="ZZ"), [("jurisdiction.state", "value_error")]),
        (
            lambda o: o["jurisdiction"].update(state="mo"),
            [("jurisdiction.state", "string_pattern_mismatch")],
        ),
        (lambda o: o.update(event_type="missing.closed"), [("event_type", "union_tag_invalid")]),
        (lambda o: o.pop("event_type"), [("event_type", "union_tag_not_found")]),
        (lambda o: o.update(extra=True), [("(root)", "extra_forbidden")]),
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


@pytest.mark.parametrize(
    ("crimes", "expected"),
    [
        ([], [("payload.crimes", "too_short")]),
        (["robbery", "he said he was hit"], [("payload.crimes.1", "literal_error")]),
        ("sexual_assault", [("payload.crimes", "tuple_type")]),
    ],
)
def test_a_disclosed_crime_is_a_kind_never_the_words_of_the_disclosure(
    crimes: Any, expected: list[tuple[str, str]]
) -> None:
    obj = envelope("return.crime_disclosed")
    obj["payload"]["crimes"] = crimes
    assert errors_of(obj) == expected


@pytest.mark.parametrize("party", ["juvenile_officer", "law_enforcement"])
def test_state_packs_add_parties_to_notify(party: str) -> None:
    obj = envelope("missing.party_notified")
    obj["payload"]["party"] = party
    event = parse_event_obj(obj)
    assert event.payload.party == party  # type: ignore[union-attr]


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


# --- hostile input (same rules at ingest and at the rules decoder: both call parse_event) -----

HOSTILE = {
    "CR": "\r",
    "LF": "\n",
    "NUL": "\x00",
    "C1": "\x85",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "PDI": "\u2069",
    "ZWSP": "\u200b",
    "ZWJ": "\u200d",
    "BOM": "\ufeff",
}
IDENTIFIERS = [
    ("missing.opened", ("event_id",)),
    ("missing.opened", ("child_id",)),
    ("missing.opened", ("payload", "episode_id")),
    ("placement.started", ("payload", "placement_id")),
    ("placement.started", ("payload", "provider_id")),
    ("child.registered", ("payload", "caseworker_id")),
    ("child.registered", ("payload", "supervisor_id")),
    ("missing.law_enforcement_reported", ("payload", "report_number")),
    ("missing.law_enforcement_reported", ("payload", "le_agency")),
    ("missing.ncmec_reported", ("payload", "ncmec_case_number")),
    ("trafficking.law_enforcement_reported", ("payload", "report_number")),
    ("return.crime_reported", ("payload", "report_number")),
    ("return.crime_reported", ("payload", "le_agency")),
]
SINGLE_LINE = [
    ("payload", "description", "name"),
    ("payload", "description", "clothing"),
    ("payload", "description", "last_seen_location"),
    ("jurisdiction", "county"),
]


def with_value(event_type: str, path: tuple[str, ...], value: str) -> dict[str, Any]:
    obj = envelope(event_type)
    target = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return obj


def rejected(obj: dict[str, Any]) -> list[tuple[str, str]]:
    raw = json.dumps(obj).encode()
    with pytest.raises(EventInvalid) as info:
        parse_event(raw)
    assert "ZZsecret" not in str(info.value)
    return [(e.field, e.problem) for e in info.value.errors]


@pytest.mark.parametrize("char", sorted(HOSTILE), ids=sorted(HOSTILE))
@pytest.mark.parametrize(
    ("event_type", "path"), IDENTIFIERS, ids=[".".join(p) for _, p in IDENTIFIERS]
)
def test_identifiers_refuse_control_bidi_and_zero_width_characters(
    event_type: str, path: tuple[str, ...], char: str
) -> None:
    obj = with_value(event_type, path, f"ZZsecret{HOSTILE[char]}1")
    assert rejected(obj) == [(".".join(path), PRINTABLE_PROBLEM)]


@pytest.mark.parametrize("char", ["\r", "\n", "\t", "\x00", "\u202e", "\u200b"])
@pytest.mark.parametrize("path", SINGLE_LINE, ids=[".".join(p) for p in SINGLE_LINE])
def test_single_line_text_refuses_every_control_character(path: tuple[str, ...], char: str) -> None:
    obj = with_value("missing.opened", path, f"ZZsecret{char}x")
    assert rejected(obj) == [(".".join(path), PRINTABLE_PROBLEM)]


def test_multi_line_text_allows_line_feeds_only() -> None:
    path = ("payload", "description", "physical_description")
    ok = parse_event(json.dumps(with_value("missing.opened", path, "tall\nslim")).encode())
    assert ok.payload.description.physical_description == "tall\nslim"  # type: ignore[union-attr]
    for char in ("\r", "\x00", "\t", "\u202e"):
        problems = rejected(with_value("missing.opened", path, f"ZZsecret{char}x"))
        assert problems == [
            (
                ".".join(path),
                "must contain only printable characters and line feeds (no CR, tab or other control)",
            )
        ]


def test_names_in_any_script_are_accepted() -> None:
    path = ("payload", "description", "name")
    for name in ("José Núñez", "Nguyễn Thị", "محمد", "李小龙", "O'Brien-Smith"):
        parse_event(json.dumps(with_value("missing.opened", path, name)).encode())


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("occurred_at",), "0001-01-01T00:00:00Z", "must not be before 1900"),
        (("occurred_at",), "1899-12-31T23:59:59Z", "must not be before 1900"),
        (("occurred_at",), "9999-12-31T00:00:00Z", "must not be more than 1 hour in the future"),
        (("occurred_at",), "2026-11-24T08:00:01Z", "must not be more than 1 hour in the future"),
        (("payload", "last_seen_at"), "0001-01-01T00:00:00Z", "must not be before 1900"),
        (
            ("payload", "last_seen_at"),
            "2027-01-01T00:00:00Z",
            "must not be more than 1 hour in the future",
        ),
    ],
)
def test_timestamps_must_be_plausible(path: tuple[str, ...], value: str, problem: str) -> None:
    received = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    obj = with_value("missing.opened", path, value)
    with pytest.raises(EventInvalid) as info:
        parse_event(json.dumps(obj).encode(), now=received)
    assert [(e.field, e.problem) for e in info.value.errors] == [(".".join(path), problem)]
    # An hour of clock skew is fine.
    fine = with_value("missing.opened", ("occurred_at",), "2026-11-24T08:00:00Z")
    parse_event(json.dumps(fine).encode(), now=received)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2999-01-01", "must not be in the future"), ("1899-12-31", "must not be before 1900")],
)
def test_date_of_birth_must_be_plausible(value: str, problem: str) -> None:
    obj = with_value("child.registered", ("payload", "date_of_birth"), value)
    assert rejected(obj) == [("payload.date_of_birth", problem)]


def test_json_nested_deeper_than_the_limit_is_refused_before_parsing() -> None:
    assert not json_depth_exceeds(b'{"a": [[["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]]]}')
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert json_depth_exceeds(deep)
    assert not json_depth_exceeds(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    with pytest.raises(EventInvalid) as info:
        parse_event(b'{"payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert [(e.field, e.type) for e in info.value.errors] == [("(root)", "json_too_deep")]


def test_a_number_json_refuses_to_read_is_an_invalid_event_not_a_crash() -> None:
    huge = b'{"event_id": ' + b"1" * 5000 + b"}"
    with pytest.raises(EventInvalid) as info:
        parse_event(huge)
    assert [(e.field, e.type) for e in info.value.errors] == [("(root)", "json_invalid")]


def test_photo_url_refuses_control_bidi_and_zero_width_characters() -> None:
    path = ("payload", "description", "photo_url")
    for char in ("\x00", "\u202e", "\u200b"):
        obj = with_value("missing.opened", path, f"https://example.org/ZZsecret{char}.jpg")
        assert rejected(obj) == [(".".join(path), PRINTABLE_PROBLEM)]


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-24T02:10Z",  # no seconds
        "2026-11-24T02:10:00",  # no offset
        "2026-11-24 02:10:00Z",
        "2026-11-24T02:10:00,5Z",
        "2026-11-24T07:55:00+0545",
        "2026-12-31T23:59:60Z",  # leap second: refused, a datetime cannot hold one
        "1785000000",
        "2026-11-24T02:10:00Z\n",
        1785000000,
    ],
)
def test_timestamps_are_rfc3339_with_seconds_and_an_offset(value: Any) -> None:
    obj = envelope("missing.opened")
    obj["payload"]["last_seen_at"] = value
    problems = [(e.field, e.problem, e.type) for e in errors_raised(obj)]
    assert problems == [("payload.last_seen_at", TIMESTAMP_PROBLEM, "datetime_parsing")]


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-24T07:55:00+05:45",
        "2026-11-24T02:10:00-00:00",
        "2026-11-24t02:10:00z",
        "2026-11-24T02:10:00.123456789Z",
    ],
)
def test_timestamps_in_every_rfc3339_spelling_are_accepted(value: str) -> None:
    obj = with_value("missing.opened", ("occurred_at",), value)
    parse_event(json.dumps(obj).encode(), now=datetime(2026, 11, 25, tzinfo=UTC))


@pytest.mark.parametrize("value", ["1296000000", "2011-3-4", "2011-03-04T00:00:00Z", 20110304])
def test_date_of_birth_is_written_yyyy_mm_dd(value: Any) -> None:
    obj = envelope("child.registered")
    obj["payload"]["date_of_birth"] = value
    problems = [(e.field, e.problem, e.type) for e in errors_raised(obj)]
    assert problems == [("payload.date_of_birth", DATE_PROBLEM, "date_parsing")]


def errors_raised(obj: dict[str, Any]) -> tuple[Any, ...]:
    with pytest.raises(EventInvalid) as info:
        parse_event(json.dumps(obj).encode(), now=datetime(2026, 11, 25, tzinfo=UTC))
    return info.value.errors
