"""The published JSON Schema (docs/schemas/event.schema.json) and the server agree.

One corpus of valid and invalid events gets a verdict from three validators: the server's own
(`parse_event`, received at a fixed moment so the plausibility checks pass), ajv in strict mode
with ajv-formats (what an agency's JavaScript system runs; tests/js/) and check-jsonschema (a
Python one). All three must agree with each other and with the expected verdict. Both
third-party validators are installed by `make setup`.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.events import EventInvalid, parse_event
from tests.unit.test_events import VALID_PAYLOADS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "schemas" / "event.schema.json"
JS = ROOT / "tests" / "js"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
RECEIVED = datetime(2026, 11, 26, tzinfo=UTC)
DROP = object()


@dataclass(frozen=True)
class Case:
    name: str
    valid: bool
    event: Any


def event(event_type: str = "missing.opened", /, **changes: Any) -> dict[str, Any]:
    """A valid event of `event_type`, with `changes` applied: keys are dotted paths
    (`payload.description.name`), values replace (or, for DROP, delete) what is there."""
    obj: dict[str, Any] = {
        "event_id": "5b0c6c1e-8a8e-4f5e-9a57-0c2b3f1f7a10",
        "event_type": event_type,
        "schema_version": 1,
        "agency_id": "demo-agency",
        "child_id": "C-100234",
        "occurred_at": "2026-11-24T02:10:00Z",
        "jurisdiction": {"state": "MO", "county": "Jackson"},
        "payload": copy.deepcopy(VALID_PAYLOADS[event_type]),
    }
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = obj
        for part in parents:
            target = target[part]
        if value is DROP:
            del target[last]
        else:
            target[last] = value
    return obj


def at(field: str, value: Any, event_type: str = "missing.opened") -> dict[str, Any]:
    return event(event_type, **{field: value})


def largest_event(char: str) -> dict[str, Any]:
    """A missing.opened with every list and text at its longest, written in `char`."""
    texts = {
        "event_id": 128,
        "child_id": 128,
        "jurisdiction.county": 256,
        "payload.episode_id": 128,
        "payload.description.name": 256,
        "payload.description.physical_description": 4096,
        "payload.description.clothing": 4096,
        "payload.description.last_seen_location": 4096,
    }
    return event(
        "missing.opened",
        **{path: char * n for path, n in texts.items()},
        **{
            "agency_id": "a" * 64,
            "payload.immediate_risks": IMMEDIATE,
            ALIASES: [char * 256] * 10,
            PLACES: [char * 256] * 20,
            PHOTO: "https://" + char * 2040,
        },
    )


INDICATORS = [
    "prior_trafficking_allegation",
    "sexual_abuse_history",
    "substance_use",
    "developmental_disability",
    "pregnant",
    "needs_medication",
]
IMMEDIATE = [
    "with_dangerous_person",
    "dangerous_situation",
    "suspected_trafficking",
    "out_of_character",
    "medical_need",
    "incapacity",
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
RISKS_OF = "payload.risk_indicators"
ALIASES = "payload.description.aliases"
PLACES = "payload.description.places_frequented"
DOB = "payload.date_of_birth"
NAME = "payload.description.name"
PHOTO = "payload.description.photo_url"
LE = "missing.law_enforcement_reported"

CORPUS = [
    *(Case(f"valid {t}", True, event(t)) for t in sorted(VALID_PAYLOADS)),
    # timestamps: RFC 3339 with seconds and an offset, nothing else
    Case("offset +05:45", True, at("occurred_at", "2026-11-24T07:55:00+05:45")),
    Case("offset -00:00", True, at("occurred_at", "2026-11-24T02:10:00-00:00")),
    Case("lower-case t and z", True, at("occurred_at", "2026-11-24t02:10:00z")),
    Case("fractional seconds", True, at("occurred_at", "2026-11-24T02:10:00.123456789Z")),
    Case("missing seconds", False, at("occurred_at", "2026-11-24T02:10Z")),
    Case("missing offset", False, at("occurred_at", "2026-11-24T02:10:00")),
    Case("space for T", False, at("occurred_at", "2026-11-24 02:10:00Z")),
    Case("comma before fraction", False, at("occurred_at", "2026-11-24T02:10:00,5Z")),
    Case("offset without colon", False, at("occurred_at", "2026-11-24T07:55:00+0545")),
    Case("offset of 24 hours", False, at("occurred_at", "2026-11-24T02:10:00+24:00")),
    Case("leap second", False, at("occurred_at", "2026-12-31T23:59:60Z")),
    Case("hour 24", False, at("occurred_at", "2026-11-24T24:00:00Z")),
    Case("February 30", False, at("payload.last_seen_at", "2026-02-30T01:00:00Z")),
    Case("Unix seconds in a string", False, at("occurred_at", "1785000000")),
    Case("Unix seconds as a number", False, at("occurred_at", 1785000000)),
    Case("timestamp and line feed", False, at("payload.last_seen_at", "2026-11-24T01:00:00Z\n")),
    # date_of_birth: YYYY-MM-DD
    Case("leap day", True, at(DOB, "2012-02-29", "child.registered")),
    Case("February 29 of a common year", False, at(DOB, "2011-02-29", "child.registered")),
    Case("date without zero padding", False, at(DOB, "2011-3-4", "child.registered")),
    Case("date with a time", False, at(DOB, "2011-03-04T00:00:00Z", "child.registered")),
    Case("Unix midnight as a date", False, at(DOB, "1296000000", "child.registered")),
    # jurisdiction.state: USPS codes only
    Case("territory code", True, at("jurisdiction.state", "PR")),
    Case("lower-case state", False, at("jurisdiction.state", "mo")),
    Case("unknown state", False, at("jurisdiction.state", "ZZ")),
    Case("three-letter state", False, at("jurisdiction.state", "MOO")),
    # identifiers and text: printable, 1-128 (ids) or 1-256 (names) characters
    Case("id of 128 characters", True, at("event_id", "x" * 128)),
    Case("id of 128 astral characters", True, at("child_id", "\U0001f600" * 128)),
    Case("id with a space", True, at("payload.episode_id", "E 1")),
    Case("name in Arabic script", True, at(NAME, "محمد")),
    Case("description over lines", True, at("payload.description.physical_description", "a\nb")),
    Case("null optional field", True, at("jurisdiction.county", None)),
    Case("id of 129 characters", False, at("event_id", "x" * 129)),
    Case("id of 129 astral characters", False, at("child_id", "\U0001f600" * 129)),
    Case("empty id", False, at("child_id", "")),
    Case("name of 257 characters", False, at(NAME, "n" * 257)),
    Case("NUL in an id", False, at("child_id", "C-1\x00")),
    Case("bidi override in an id", False, at("event_id", "abc\u202edef")),
    Case("zero-width space in an id", False, at("payload.episode_id", "E\u200b1")),
    Case("no-break space in an id", False, at("payload.episode_id", "E\u00a01")),
    Case("C1 control in an id", False, at("child_id", "C\x851")),
    Case("line feed in a report number", False, at("payload.report_number", "R\n1", LE)),
    Case("tab in a county", False, at("jurisdiction.county", "Jack\tson")),
    Case("line separator in a name", False, at(NAME, "Jane\u2028Doe")),
    Case("CR in a description", False, at("payload.description.physical_description", "a\r\nb")),
    Case("upper-case agency id", False, at("agency_id", "Demo-Agency")),
    Case("agency id and line feed", False, at("agency_id", "demo-agency\n")),
    Case("one-character agency id", False, at("agency_id", "d")),
    # photo_url: http(s), printable, no space
    Case("javascript: URL", False, at(PHOTO, "javascript:alert(1)")),
    Case("space in a URL", False, at(PHOTO, "https://example.org/a b.jpg")),
    Case("zero-width space in a URL", False, at(PHOTO, "https://example.org/\u200b.jpg")),
    # bounded events (docs/contract.md, "Bounded events"): every list has a maximum
    Case("6 risk indicators", True, at(RISKS_OF, INDICATORS, "child.registered")),
    Case("7 risk indicators", False, at(RISKS_OF, [*INDICATORS, "pregnant"], "child.registered")),
    Case("6 immediate risks", True, at("payload.immediate_risks", IMMEDIATE)),
    Case("7 immediate risks", False, at("payload.immediate_risks", [*IMMEDIATE, "incapacity"])),
    Case("7 crimes", True, at("payload.crimes", CRIMES, "return.crime_disclosed")),
    Case("8 crimes", False, at("payload.crimes", [*CRIMES, "other"], "return.crime_disclosed")),
    Case("20 factors", True, at("payload.factors", ["f"] * 20, "return.debrief_completed")),
    Case("21 factors", False, at("payload.factors", ["f"] * 21, "return.debrief_completed")),
    Case("10 aliases", True, at(ALIASES, ["JJ"] * 10)),
    Case("11 aliases", False, at(ALIASES, ["JJ"] * 11)),
    Case("3,960 aliases of 250 characters", False, at(ALIASES, ["A" * 250] * 3960)),
    Case("20 places frequented", True, at(PLACES, ["mall"] * 20)),
    Case("21 places frequented", False, at(PLACES, ["mall"] * 21)),
    Case("58,000 risk indicators", False, at(RISKS_OF, ["pregnant"] * 58000, "child.registered")),
    # ... and the largest event they allow is within the whole-event limit (server only)
    Case("every text longest, in 4-byte characters", True, largest_event("\U0001f600")),
    Case("unknown field named like a person", False, at("payload.Jane Doe, SSN 123-45-6789", 1)),
    # shape: closed objects, known types, exact kinds
    Case("unknown top-level field", False, at("surprise", 1)),
    Case("unknown payload field", False, at("payload.surprise", 1)),
    Case("unknown jurisdiction field", False, at("jurisdiction.city", "KC")),
    Case("unknown event_type", False, at("event_type", "missing.closed")),
    Case("no event_type", False, at("event_type", DROP)),
    Case("payload of another type", False, at("event_type", "missing.located")),
    Case("required payload field missing", False, at("payload.circumstances", DROP)),
    Case("unknown enum value", False, at("payload.immediate_risks", ["lost"])),
    Case("bool as a string", False, at("payload.ncic_entry_confirmed", "yes", LE)),
    Case("schema_version 1.0", True, at("schema_version", 1.0)),
    Case("schema_version 2", False, at("schema_version", 2)),
    Case("schema_version as a string", False, at("schema_version", "1")),
    Case("not an object", False, [event()]),
]


def server_accepts(case: Case) -> bool:
    try:
        parse_event(json.dumps(case.event).encode(), now=RECEIVED)
    except EventInvalid:
        return False
    return True


def ajv_verdicts(corpus_file: Path) -> list[bool]:
    if not (JS / "node_modules" / "ajv").is_dir() or shutil.which("node") is None:
        pytest.fail("node or tests/js/node_modules missing: run `make setup`")
    done = subprocess.run(
        ["node", str(JS / "validate.mjs"), str(SCHEMA), str(corpus_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [v["valid"] for v in json.loads(done.stdout)]


def check_jsonschema_verdicts(files: list[Path]) -> list[bool]:
    if not CHECK_JSONSCHEMA.exists():
        pytest.fail("check-jsonschema missing: run `make setup`")
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), "--regex-variant", "default"]
        + ["--output-format", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert not report["parse_errors"], report["parse_errors"]
    refused = {e["filename"] for e in report["errors"]}
    return [str(f) not in refused for f in files]


def test_schema_is_standard_2020_12() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "discriminator" not in SCHEMA.read_text()


def test_server_ajv_and_check_jsonschema_agree_on_every_case(tmp_path: Path) -> None:
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    corpus_file = tmp_path / "corpus.json"
    corpus_file.write_text(json.dumps([c.event for c in CORPUS]))
    files: list[Path] = []
    for i, c in enumerate(CORPUS):
        files.append(tmp_path / f"{i:03}.json")
        files[-1].write_text(json.dumps(c.event))

    server = [server_accepts(c) for c in CORPUS]
    ajv = ajv_verdicts(corpus_file)
    cjs = check_jsonschema_verdicts(files)

    wrong = [
        f"{c.name}: expected {c.valid}, server {s}, ajv {a}, check-jsonschema {j}"
        for c, s, a, j in zip(CORPUS, server, ajv, cjs, strict=True)
        if not c.valid == s == a == j
    ]
    assert not wrong, "\n".join(wrong)
