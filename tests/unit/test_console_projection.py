"""The read model's pure projection (one record → its writes) and how a batch is applied:
idempotent, all or nothing with its offsets, and no child's personal data in any row; the
migrations, up and down."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from services.common import topics
from services.console.db import make_engine, migrate
from services.console.models import (
    AckRow,
    Base,
    Child,
    ChildEventRow,
    Episode,
    EscalationRow,
    NoteRow,
    NotificationRow,
    SilenceRow,
)
from services.console.projection import Delete, Unprojectable, Upsert, Write, project
from services.console.projector import Message, project_batch
from services.console.store import load_offsets, write_batch
from services.notify.records import Ack, NotificationRecord, notification_id
from services.notify.silences import Silence
from tests.support import make_escalation, make_event, missing_opened, ts

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
AGENCY = "demo-agency"
# What must never reach a row: a name, a description, a date of birth, a photo, a place, what
# a child said or what was done to find them (free text of an event).
PII = (
    "Jane Doe",
    "Janie",
    "red hoodie",
    "2011-05-01",
    "https://photos.example/j.jpg",
    "mall",
    "aunt's flat",
)


def _bytes(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def registered(child: str = "C-1") -> bytes:
    profile = {
        "date_of_birth": "2011-05-01",
        "sex": "female",
        "risk_indicators": ["substance_use"],
        "caseworker_id": "W-1",
        "supervisor_id": "S-1",
    }
    return _bytes(make_event("child.registered", profile, child_id=child, occurred_at=NOW))


def opened(child: str = "C-1", episode: str = "E-1") -> bytes:
    description = {
        "name": "Jane Doe",
        "aliases": ["Janie"],
        "clothing": "red hoodie",
        "photo_url": "https://photos.example/j.jpg",
        "places_frequented": ["mall"],
    }
    event = missing_opened(child_id=child, episode_id=episode, at=NOW, description=description)
    return _bytes(event)


def located(child: str = "C-1", episode: str = "E-1") -> bytes:
    payload = {"episode_id": episode, "located_at": ts(NOW + timedelta(hours=5))}
    event = make_event(
        "missing.located", payload, child_id=child, occurred_at=NOW + timedelta(hours=5)
    )
    return _bytes(event)


def escalation(status: str = "firing", escalation_id: str = "esc-1") -> bytes:
    at = NOW + timedelta(hours=6) if status == "resolved" else NOW
    esc = make_escalation(
        escalation_id=escalation_id,
        status=status,
        child_id="C-1",
        created_at=at,
        due_at=NOW + timedelta(hours=2),
        jurisdiction={"state": "MO", "county": "Jackson"},
        evidence={"age": 15, "date_of_birth": "2011-05-01", "risk_tier": "high"},
    )
    return esc.to_bytes()


def notification(attempt: int = 1, status: str = "delivered") -> bytes:
    return NotificationRecord(
        notification_id=notification_id("esc-1", "caseworker-mail", "0"),
        escalation_id="esc-1",
        receiver="caseworker-mail",
        recipient_class="caseworker",
        channel="email",
        status=status,
        attempt=attempt,
        step="0",
        escalation_status="firing",
        at=NOW,
        person_id="W-1",
    ).to_bytes()


def ack(person: str | None = "S-1", note: str | None = "on my way to the placement") -> bytes:
    return Ack(
        escalation_id="esc-1",
        receiver="supervisor-mail",
        acked_at=NOW + timedelta(minutes=3),
        person_id=person,
        agency_id=AGENCY,
        via="link",
        note=note,
    ).to_bytes()


def note_record(note_id: str = "n-1", text: str = "called the placement, no answer") -> bytes:
    return Ack(
        escalation_id="esc-1",
        receiver="console",
        acked_at=NOW + timedelta(minutes=4),
        person_id="W-1",
        agency_id=AGENCY,
        via="console",
        note=text,
        kind="note",
        note_id=note_id,
        stops=False,
    ).to_bytes()


def silence(**kw: Any) -> Silence:
    base: dict[str, Any] = {
        "silence_id": "sil-1",
        "agency_id": AGENCY,
        "match": {"rule_id": "risk.tier-changed"},
        "match_re": {"county": "Jack.*"},
        "starts_at": NOW,
        "ends_at": NOW + timedelta(hours=4),
        "reason": "tier recalculation after the policy update",
        "created_by": "S-1",
        "created_at": NOW,
    }
    return Silence(**{**base, **kw})


def upserts_of(
    topic: str, key: bytes | None, value: bytes | None, now: datetime | None = None
) -> list[Upsert]:
    """What project() writes, when it is upserts only."""
    writes = project(topic, key, value, now)
    assert all(isinstance(w, Upsert) for w in writes)
    return [w for w in writes if isinstance(w, Upsert)]


def only(upserts: Sequence[Write], table: str) -> dict[str, Any]:
    rows = [dict(u.values) for u in upserts if isinstance(u, Upsert) and u.table == table]
    assert len(rows) == 1, rows
    return rows[0]


def assert_no_pii(values: Any) -> None:
    text = json.dumps(values, default=str)
    for secret in PII:
        assert secret not in text


# --- the pure mapping ---------------------------------------------------------------------------


def test_child_registered_keeps_ids_state_county_and_staff_only() -> None:
    upserts = upserts_of(topics.EVENTS, b"demo-agency:C-1", registered(), NOW)
    assert only(upserts, "children") == {
        "agency_id": AGENCY,
        "child_id": "C-1",
        "state": "MO",
        "county": "Jackson",
        "caseworker_id": "W-1",
        "supervisor_id": "S-1",
    }
    assert upserts[0].key == ("agency_id", "child_id")
    assert_no_pii([u.values for u in upserts])


def test_missing_opened_opens_an_episode_without_the_description() -> None:
    upserts = upserts_of(topics.EVENTS, None, opened(), NOW)
    assert only(upserts, "episodes") == {
        "agency_id": AGENCY,
        "episode_id": "E-1",
        "child_id": "C-1",
        "opened_at": NOW,
        "closed_at": None,
        "state": "MO",
        "county": "Jackson",
        "last_seen_at": NOW - timedelta(minutes=30),
        "located_event_at": None,
    }
    child = [u for u in upserts if u.table == "children"][0]
    assert child.update == ("state", "county")  # a missing event never clears the staff
    assert_no_pii([u.values for u in upserts])


def test_missing_located_closes_the_episode_only() -> None:
    upserts = upserts_of(topics.EVENTS, None, located(), NOW + timedelta(hours=6))
    episode = [u for u in upserts if u.table == "episodes"][0]
    assert episode.values["closed_at"] == NOW + timedelta(hours=5)
    assert episode.values["located_event_at"] == NOW + timedelta(hours=5)
    # opened_at, the opening's jurisdiction and last seen stay what they were
    assert episode.update == ("closed_at", "located_event_at")
    assert episode.key == ("agency_id", "child_id", "episode_id")  # an episode id is the child's


def test_escalation_firing_then_resolved() -> None:
    firing = only(project(topics.ESCALATIONS, b"k", escalation("firing")), "escalations")
    assert (firing["status"], firing["fired_at"], firing["resolved_at"]) == ("firing", NOW, None)
    assert (firing["rule_id"], firing["severity"], firing["county"]) == (
        "federal.report-ncmec",
        "high",
        "Jackson",
    )
    resolved_upserts = upserts_of(topics.ESCALATIONS, b"k", escalation("resolved"))
    resolved = only(resolved_upserts, "escalations")
    assert (resolved["status"], resolved["resolved_at"]) == ("resolved", NOW + timedelta(hours=6))
    assert "status" in resolved_upserts[0].update
    assert "status" not in upserts_of(topics.ESCALATIONS, b"k", escalation("firing"))[0].update
    assert_no_pii([firing, resolved])  # neither the subject nor the evidence


def test_notification_record() -> None:
    row = only(project(topics.NOTIFICATIONS, b"esc-1", notification()), "notifications")
    assert (row["escalation_id"], row["status"], row["attempt"], row["channel"]) == (
        "esc-1",
        "delivered",
        1,
        "email",
    )
    assert row["agency_id"] is None  # an older record names no agency: joined by escalation


def test_ack_keyed_by_person_or_receiver_with_its_note() -> None:
    by_person = only(project(topics.ACKS, b"esc-1", ack("S-1")), "acks")
    by_receiver = only(project(topics.ACKS, b"esc-1", ack(None, note=None)), "acks")
    assert (by_person["who"], by_receiver["who"]) == ("S-1", "receiver:supervisor-mail")
    assert (by_person["note"], by_receiver["note"]) == ("on my way to the placement", None)
    assert by_person["kind"] is None


@pytest.mark.parametrize("note", ["two\nlines", "x" * 501, "bidi \u202e override"])
def test_an_acks_note_that_is_not_one_short_printable_line_is_left_out_not_the_ack(
    note: str,
) -> None:
    row = only(project(topics.ACKS, b"esc-1", ack("S-1", note=note)), "acks")
    assert (row["who"], row["note"]) == ("S-1", None)


def test_a_note_goes_to_notes_never_to_acks() -> None:
    upserts = project(topics.ACKS, b"esc-1", note_record())
    assert [u.table for u in upserts] == ["notes"]
    assert only(upserts, "notes") == {
        "escalation_id": "esc-1",
        "note_id": "n-1",
        "person_id": "W-1",
        "person_agency_id": AGENCY,
        "at": NOW + timedelta(minutes=4),
        "note": "called the placement, no answer",
    }
    assert upserts[0].key == ("escalation_id", "note_id")
    assert isinstance(upserts[0], Upsert) and upserts[0].update == ()  # a double submit: one


@pytest.mark.parametrize(
    "change",
    [
        {"note_id": None},  # nothing to key it by
        {"note": None},
        {"note": ""},
        {"note": "two\nlines"},
        {"note": "x" * 501},
        {"kind": "reaction"},  # not a kind of this release
    ],
)
def test_a_note_without_an_id_or_a_one_line_text_is_invalid(change: dict[str, Any]) -> None:
    record = {**json.loads(note_record()), **change}
    with pytest.raises(Unprojectable) as caught:
        project(topics.ACKS, None, _bytes({k: v for k, v in record.items() if v is not None}))
    assert caught.value.reason == "invalid_ack"


def test_escalation_keeps_its_basis_and_evidence_without_the_childs_person() -> None:
    evidence = {
        "age": 15,
        "AGE": 15,
        "date_of_birth": "2011-05-01",
        "dob": "2011-05-01",
        "child_name": "Jane Doe",
        "physical_description": "red hoodie",
        "photo_url": "https://photos.example/j.jpg",
        "home_address": "12 Elm St",
        "last_seen_location": "mall",
        "risk_tier": "high",
        "runs_last_12_months": 3,
        "on_time": True,
        "hours_missing": 5.5,
        "not_finite": float("inf"),
        "setting": "group_home",
        "discharged_at": "2026-11-24T14:00:00+00:00",
        "was_due_at": None,
        "factors": ["aunt's flat"],
        "nested": {"where": "aunt's flat"},
        "long": "x" * 65,
        "control": "a\nb",
        "Jane Doe's aunt": "aunt's flat",  # a key that is no code
    }
    esc = make_escalation(escalation_id="esc-e", evidence=evidence, basis="42 USC 671(a)(35)(B)")
    upserts = project(topics.ESCALATIONS, None, esc.to_bytes())
    row = only(upserts, "escalations")
    assert row["basis"] == "42 USC 671(a)(35)(B)"
    assert json.loads(row["evidence"]) == {
        "discharged_at": "2026-11-24T14:00:00+00:00",
        "hours_missing": 5.5,
        "on_time": True,
        "risk_tier": "high",
        "runs_last_12_months": 3,
        "setting": "group_home",
    }
    assert_no_pii(row)
    assert "15" not in row["evidence"]  # the age


def test_a_resolved_escalations_evidence_is_final() -> None:
    firing = project(topics.ESCALATIONS, None, escalation("firing"))[0]
    resolved = project(topics.ESCALATIONS, None, escalation("resolved"))[0]
    assert isinstance(firing, Upsert) and isinstance(resolved, Upsert)
    assert "evidence" not in firing.update and "basis" in firing.update
    assert "evidence" in resolved.update


def test_an_escalation_keeps_what_the_report_reads() -> None:
    # Firing on its triggering event: the age band at the duty's start, never the age.
    firing = make_escalation(
        escalation_id="esc-r", triggered_by=["ev-open"], evidence={"age": 15, "setting": "none"}
    )
    row = only(project(topics.ESCALATIONS, None, firing.to_bytes()), "escalations")
    assert {k: row[k] for k in REPORT_COLUMNS} == {
        "policy_version": "test",
        "trigger_event_id": "ev-open",
        "resolved_by": None,
        "discharged_at": None,
        "age_band": "15-17",
    }
    assert "age" not in json.loads(row["evidence"])
    # Resolved: the event that discharged it, and when.
    resolved = firing.model_copy(
        update={
            "status": "resolved",
            "triggered_by": ("ev-open", "ev-report"),
            "evidence": {"age": 15, "discharged_at": "2026-11-24T14:00:00+00:00", "on_time": True},
            "policy_version": "newer",
        }
    )
    upsert = upserts_of(topics.ESCALATIONS, None, resolved.to_bytes())[0]
    assert {k: upsert.values[k] for k in REPORT_COLUMNS} == {
        "policy_version": "newer",
        "trigger_event_id": "ev-open",
        "resolved_by": "ev-report",
        "discharged_at": datetime(2026, 11, 24, 14, tzinfo=UTC),
        "age_band": "15-17",
    }
    # The firing record's policy computed the deadline: it is the one kept once applied.
    assert "policy_version" not in upsert.update and "resolved_by" in upsert.update
    firing_upsert = upserts_of(topics.ESCALATIONS, None, firing.to_bytes())[0]
    assert "policy_version" in firing_upsert.update and "resolved_by" not in firing_upsert.update


@pytest.mark.parametrize(
    ("evidence", "band"),
    [
        ({"age": 11}, "0-11"),
        ({"age": 12}, "12-14"),
        ({"age": 17}, "15-17"),
        ({"age": 18}, "18+"),
        ({}, "unknown"),  # no date of birth on record
        ({"age": "15"}, "unknown"),  # not the engine's
        ({"age": 15, "fired_at": "2026-11-25T12:00:00+00:00"}, None),  # on the clock
    ],
)
def test_the_age_band_at_a_duty_start(evidence: dict[str, Any], band: str | None) -> None:
    esc = make_escalation(evidence=evidence)
    assert only(project(topics.ESCALATIONS, None, esc.to_bytes()), "escalations")["age_band"] == (
        band
    )


REPORT_COLUMNS = ("policy_version", "trigger_event_id", "resolved_by", "discharged_at", "age_band")


@pytest.mark.parametrize(
    ("event_type", "payload", "detail", "code"),
    [
        (
            "screening.completed",
            {"episode_id": "E-1", "tool": "cse_it", "result": "possible_concern"},
            "possible_concern",
            None,
        ),
        (
            "screening.completed",
            {"tool": "tvit", "result": "clear_concern"},
            "clear_concern",
            None,
        ),
        (
            "missing.staffing_held",
            {"episode_id": "E-1", "level": "supervisor"},
            "supervisor",
            None,
        ),
        (
            "missing.party_notified",
            {"episode_id": "E-1", "party": "guardian_ad_litem"},
            "guardian_ad_litem",
            None,
        ),
        (
            "missing.search_effort",
            {"episode_id": "E-1", "effort": "searched the mall"},
            None,
            None,
        ),
        (
            "return.debrief_completed",
            {"episode_id": "E-1", "factors": ["aunt's flat"]},
            None,
            None,
        ),
        ("trafficking.identified", {"status": "suspected", "type": "labor"}, None, "suspected"),
        ("return.crime_disclosed", {"episode_id": "E-1", "crimes": ["robbery"]}, None, None),
        (
            "placement.started",
            {"placement_id": "P-1", "setting": "group_home", "provider_id": "PR-1"},
            None,
            "group_home",
        ),
        ("placement.ended", {"placement_id": "P-1", "reason": "runaway"}, None, None),
    ],
)
def test_every_event_is_a_timeline_row_with_a_code_only(
    event_type: str, payload: dict[str, Any], detail: str | None, code: str | None
) -> None:
    event = make_event(event_type, payload, child_id="C-1", occurred_at=NOW, event_id="ev-1")
    upserts = project(topics.EVENTS, None, _bytes(event), NOW)
    assert only(upserts, "child_events") == {
        "agency_id": AGENCY,
        "event_id": "ev-1",
        "child_id": "C-1",
        "episode_id": payload.get("episode_id"),
        "event_type": event_type,
        "occurred_at": NOW,
        "detail": detail,
        "state": "MO",
        "county": "Jackson",
        "placement_id": payload.get("placement_id"),
        "code": code,
    }
    assert_no_pii([u.values for u in upserts if isinstance(u, Upsert)])


def test_profile_and_missing_events_are_timeline_rows_too() -> None:
    for value, event_type, episode in (
        (registered(), "child.registered", None),
        (opened(), "missing.opened", "E-1"),
        (located(), "missing.located", "E-1"),
    ):
        row = only(project(topics.EVENTS, None, value, NOW + timedelta(hours=6)), "child_events")
        assert (row["event_type"], row["episode_id"], row["detail"]) == (event_type, episode, None)
        # The profile's sex is its code (the report counts runs by sex); the birth date is not.
        assert row["code"] == ("female" if event_type == "child.registered" else None)


def test_a_silence_as_notify_keeps_it() -> None:
    record = silence()
    [upsert] = project(topics.SILENCES, b"sil-1", record.to_bytes())
    assert isinstance(upsert, Upsert) and upsert.key == ("silence_id",)
    row = dict(upsert.values)
    assert json.loads(row.pop("matchers")) == [
        {"label": "county", "op": "=~", "value": "Jack.*"},
        {"label": "rule_id", "op": "=", "value": "risk.tier-changed"},
    ]
    assert row == {
        "silence_id": "sil-1",
        "agency_id": AGENCY,
        "kind": "silence",
        "receiver": None,
        "starts_at": NOW,
        "ends_at": NOW + timedelta(hours=4),
        "reason": "tier recalculation after the policy update",
        "created_by": "S-1",
        "created_at": NOW,
        "expired_at": None,
        "expired_by": None,
    }
    assert "expired_at" in upsert.update  # written again when expired
    expired = silence(expired_at=NOW + timedelta(hours=1), expired_by="S-2")
    assert only(project(topics.SILENCES, b"sil-1", expired.to_bytes()), "silences")[
        "expired_at"
    ] == NOW + timedelta(hours=1)


def test_a_silence_tombstone_removes_it_and_a_keyless_or_misfiled_one_is_refused() -> None:
    assert project(topics.SILENCES, b"sil-1", None) == [Delete("silences", {"silence_id": "sil-1"})]
    for key, value in (
        (None, silence().to_bytes()),  # notify's ledger skips a record without a key
        (None, None),
        (b"sil-2", silence().to_bytes()),  # under another silence's key
        (b"sil-1", b'{"silence_id": "sil-1"}'),
    ):
        with pytest.raises(Unprojectable) as caught:
            project(topics.SILENCES, key, value)
        assert caught.value.reason == "invalid_silence"
    with pytest.raises(Unprojectable) as caught:
        project(topics.SILENCES, b"\xff", None)
    assert caught.value.reason == "undecodable"


def test_a_silence_reason_that_is_not_one_short_line_is_left_out() -> None:
    for reason in ("two\nlines", "r" * 201):
        row = only(
            project(topics.SILENCES, b"sil-1", silence(reason=reason).to_bytes()), "silences"
        )
        assert row["reason"] is None


def test_a_maintenance_window_names_its_receiver() -> None:
    window = silence(kind="maintenance", match={}, match_re={}, receiver="agency-webhook")
    row = only(project(topics.SILENCES, b"sil-1", window.to_bytes()), "silences")
    assert (row["kind"], row["receiver"], json.loads(row["matchers"])) == (
        "maintenance",
        "agency-webhook",
        [],
    )


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        (topics.EVENTS, b"\xff\xfe", "undecodable"),
        (topics.EVENTS, b"{not json", "undecodable"),
        (topics.EVENTS, b'{"event_type": "missing.opened"}', "invalid_event"),
        (topics.ESCALATIONS, b"[]", "invalid_escalation"),
        (topics.NOTIFICATIONS, b'{"status": "delivered"}', "invalid_notification"),
        (topics.ACKS, b"42", "invalid_ack"),
        (topics.ACKS, None, "tombstone"),
        ("care.other.v1", b"{}", "unknown_topic"),
    ],
)
def test_unprojectable_records_name_a_reason_only(
    topic: str, value: bytes | None, reason: str
) -> None:
    with pytest.raises(Unprojectable) as caught:
        project(topic, None, value, NOW)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_canary_records_make_no_rows() -> None:
    canary = make_event("missing.located", {"episode_id": "E", "located_at": ts(NOW)})
    canary["agency_id"] = "carealert-canary"
    canary["occurred_at"] = ts(NOW)
    assert project(topics.EVENTS, None, _bytes(canary), NOW) == []
    canary_silence = silence(agency_id="carealert-canary")
    assert project(topics.SILENCES, b"sil-1", canary_silence.to_bytes()) == []


def test_a_bad_record_is_skipped_and_its_offset_still_advances() -> None:
    batch = project_batch(
        [
            Message(topics.EVENTS, 0, 7, None, b"{oops"),
            Message(topics.EVENTS, 0, 8, None, registered()),
            Message(topics.ACKS, 2, 3, None, b"{}"),
        ]
    )
    assert batch.skipped == {"undecodable": 1, "invalid_ack": 1}
    assert batch.offsets == {(topics.EVENTS, 0): 9, (topics.ACKS, 2): 4}
    assert [u.table for u in batch.upserts] == ["children", "child_events"]


# --- applying batches on SQLite -----------------------------------------------------------------


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = make_engine("sqlite://")
    migrate(engine)
    yield engine
    engine.dispose()


RECORDS: list[tuple[str, bytes | None, bytes | None]] = [  # topic, key, value
    (topics.EVENTS, None, registered()),
    (topics.EVENTS, None, opened()),
    (topics.ESCALATIONS, None, escalation("firing")),
    (topics.NOTIFICATIONS, None, notification(1, "retrying")),
    (topics.NOTIFICATIONS, None, notification(2, "delivered")),
    (topics.ACKS, None, ack("S-1")),
    (topics.ACKS, None, ack(None)),
    (topics.ACKS, None, note_record("n-1")),
    (topics.ACKS, None, note_record("n-1")),  # a double submit
    (topics.ACKS, None, note_record("n-2", "left a message with the school")),
    (topics.SILENCES, b"sil-1", silence().to_bytes()),
    (topics.SILENCES, b"sil-2", silence(silence_id="sil-2").to_bytes()),
    (topics.EVENTS, None, located()),
    (topics.ESCALATIONS, None, escalation("resolved")),
    (
        topics.SILENCES,
        b"sil-1",
        silence(expired_at=NOW + timedelta(hours=1), expired_by="S-2").to_bytes(),
    ),
    (topics.SILENCES, b"sil-2", None),  # a tombstone
]


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: sorted(tuple(row) for row in conn.execute(select(table)))
            for name, table in Base.metadata.tables.items()
        }


def test_the_same_batch_twice_gives_the_same_rows(engine: Engine) -> None:
    messages = [Message(t, 0, i, k, v, None) for i, (t, k, v) in enumerate(RECORDS)]
    batch = project_batch(messages)
    write_batch(engine, batch.upserts, batch.offsets)
    first = everything(engine)
    write_batch(engine, batch.upserts, batch.offsets)
    assert everything(engine) == first
    with engine.connect() as conn:
        esc = conn.execute(select(EscalationRow)).one()
        assert (esc.status, esc.fired_at is not None, esc.resolved_at is not None) == (
            "resolved",
            True,
            True,
        )
        episode = conn.execute(select(Episode)).one()
        assert episode.opened_at is not None and episode.closed_at is not None
        child = conn.execute(select(Child)).one()
        assert (child.caseworker_id, child.supervisor_id) == ("W-1", "S-1")  # kept by missing.*
        assert conn.execute(select(func.count()).select_from(NotificationRow)).scalar() == 2
        assert conn.execute(select(func.count()).select_from(AckRow)).scalar() == 2  # no note
        notes = conn.execute(select(NoteRow.note_id, NoteRow.note).order_by(NoteRow.note_id))
        assert [tuple(n) for n in notes] == [
            ("n-1", "called the placement, no answer"),
            ("n-2", "left a message with the school"),
        ]
        events = conn.execute(select(ChildEventRow.event_type).order_by(ChildEventRow.occurred_at))
        assert list(events.scalars()) == ["child.registered", "missing.opened", "missing.located"]
        assert json.loads(esc.evidence or "") == {"risk_tier": "high"}  # no age, no birth date
        assert esc.basis == "42 USC 671(a)(35)(B)"
        [kept] = conn.execute(select(SilenceRow)).all()  # sil-2's tombstone removed it
        assert (kept.silence_id, kept.expired_at) == ("sil-1", NOW + timedelta(hours=1))
    assert_no_pii(first)
    assert load_offsets(engine) == {
        (topics.EVENTS, 0): 13,
        (topics.ESCALATIONS, 0): 14,
        (topics.NOTIFICATIONS, 0): 5,
        (topics.ACKS, 0): 10,
        (topics.SILENCES, 0): 16,
    }


def test_a_failed_transaction_leaves_neither_rows_nor_offsets(engine: Engine) -> None:
    good = project_batch([Message(topics.EVENTS, 0, 0, None, registered())])
    broken = Upsert(  # state is NOT NULL: the database refuses the batch's last statement
        "children",
        {"agency_id": AGENCY, "child_id": "C-2", "state": None},
        ("agency_id", "child_id"),
        (),
    )
    with pytest.raises(IntegrityError):
        write_batch(engine, [*good.upserts, broken], good.offsets)
    assert all(rows == [] for rows in everything(engine).values())
    assert load_offsets(engine) == {}


def test_the_database_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.console.settings import ConsoleSettings

    url = "postgresql+psycopg://console:s3cret-pw@db.internal:5432/console"
    monkeypatch.setenv("CAREALERT_DATABASE_URL", url)
    settings = ConsoleSettings()
    assert settings.database_url.get_secret_value() == url
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings)


def test_times_are_stored_as_instants_whatever_their_offset(engine: Engine) -> None:
    """SQLite keeps no zone: 03:00-06:00 (09:00Z) must still sort after 04:00Z."""
    central = datetime(2026, 11, 24, 3, 0, tzinfo=timezone(timedelta(hours=-6)))
    records = [
        make_escalation(escalation_id="late", agency_id=AGENCY, created_at=central),
        make_escalation(
            escalation_id="early",
            agency_id=AGENCY,
            created_at=datetime(2026, 11, 24, 4, 0, tzinfo=UTC),
        ),
    ]
    messages = [
        Message(topics.ESCALATIONS, 0, i, None, esc.to_bytes()) for i, esc in enumerate(records)
    ]
    batch = project_batch(messages)
    write_batch(engine, batch.upserts, batch.offsets)
    with engine.connect() as conn:
        rows = conn.execute(
            select(EscalationRow.escalation_id, EscalationRow.fired_at).order_by(
                EscalationRow.fired_at
            )
        ).all()
    assert [r[0] for r in rows] == ["early", "late"]
    assert rows[1][1] == central  # aware, the same instant


def test_a_notification_carries_its_escalations_agency() -> None:
    record = json.loads(notification())
    [upsert] = upserts_of(
        topics.NOTIFICATIONS, None, json.dumps({**record, "agency_id": AGENCY}).encode()
    )
    assert upsert.values["agency_id"] == AGENCY
    [older] = upserts_of(topics.NOTIFICATIONS, None, notification())
    assert older.values["agency_id"] is None


def test_a_value_too_long_for_its_column_is_skipped_as_unwritable() -> None:
    record = json.loads(notification())
    record["receiver"] = "r" * 300
    with pytest.raises(Unprojectable) as info:
        project(topics.NOTIFICATIONS, None, json.dumps(record).encode())
    assert info.value.reason == "unwritable"


def test_offsets_moved_under_the_projector_write_nothing(engine: Engine) -> None:
    from services.console.store import OffsetsMoved

    first = project_batch([Message(topics.EVENTS, 0, 0, None, registered())])
    write_batch(engine, first.upserts, first.offsets, {(topics.EVENTS, 0): None})
    # A rebuild emptied the table meanwhile, or another projector wrote: this one's position
    # (offset 1 stored) no longer matches what the database holds.
    later = project_batch([Message(topics.EVENTS, 0, 5, None, registered("C-9"))])
    with pytest.raises(OffsetsMoved):
        write_batch(engine, later.upserts, later.offsets, {(topics.EVENTS, 0): 3})
    assert load_offsets(engine) == {(topics.EVENTS, 0): 1}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Child)).scalar() == 1
    # Two projectors that both started at the beginning: the second to write loses, whole.
    with pytest.raises(OffsetsMoved):
        write_batch(engine, later.upserts, later.offsets, {(topics.EVENTS, 0): None})
    assert load_offsets(engine) == {(topics.EVENTS, 0): 1}


def test_a_database_away_delays_the_batch_and_skips_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from prometheus_client import CollectorRegistry
    from sqlalchemy.exc import OperationalError

    from services.console import projector as module
    from services.console.metrics import ConsoleMetrics

    class ListSource:
        def __init__(self, messages: list[Message]) -> None:
            self.messages = messages

        def start(self, positions: Any) -> None:
            del positions

        def poll(self, timeout_s: float, max_records: int) -> Sequence[Message]:
            out, self.messages = self.messages, []
            return out

        def close(self) -> None:
            pass

    real = write_batch
    refusals = [OperationalError("connect", {}, Exception("database restarting"))]

    def flaky(*args: Any, **kw: Any) -> None:
        if refusals:
            raise refusals.pop(0)
        real(*args, **kw)

    monkeypatch.setattr(module, "write_batch", flaky)
    monkeypatch.setattr(module, "retry_delay_s", lambda attempt: 0.0)
    metrics = ConsoleMetrics(CollectorRegistry())
    projector = module.Projector(
        ListSource([Message(topics.EVENTS, 0, 0, None, registered())]), engine, metrics
    )
    projector.stop = threading.Event()
    assert projector.step() == 1
    assert load_offsets(engine) == {(topics.EVENTS, 0): 1}
    assert metrics.retries._value.get() == 1
    # Stopped while the database is away: the batch is left for the next start.
    refusals.append(OperationalError("connect", {}, Exception("database restarting")))
    projector.source = ListSource([Message(topics.EVENTS, 0, 1, None, registered("C-2"))])
    projector.stop.set()
    assert projector.step() == 0
    assert load_offsets(engine) == {(topics.EVENTS, 0): 1}


# --- migrations on SQLite -------------------------------------------------------------------------


def alembic(engine: Engine) -> Any:
    from alembic.config import Config

    from services.console.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def schema(engine: Engine) -> dict[str, tuple[list[str], list[str]]]:
    """Each table's columns and index names."""
    from sqlalchemy import inspect

    found = inspect(engine)
    return {
        table: (
            [c["name"] for c in found.get_columns(table)],
            sorted(str(i["name"]) for i in found.get_indexes(table)),
        )
        for table in found.get_table_names()
        if table != "alembic_version"
    }


def test_migration_0003_up_and_down_keeps_the_rows_and_indexes(tmp_path: Any) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    config = alembic(engine)
    try:
        command.upgrade(config, "0002")
        before = schema(engine)
        with engine.begin() as conn:  # a row projected by the release before
            conn.execute(
                text(
                    "INSERT INTO escalations (escalation_id, agency_id, child_id, rule_id,"
                    " severity, status, action, state) VALUES ('esc-0', 'demo-agency', 'C-0',"
                    " 'federal.report-ncmec', 'high', 'firing', 'Report', 'MO')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO acks (escalation_id, who, receiver, stops, acked_at)"
                    " VALUES ('esc-0', 'S-1', 'supervisor-mail', 1, '2026-11-24 12:00:00')"
                )
            )
        command.upgrade(config, "0003")
        after = schema(engine)
        assert set(after) - set(before) == {"notes", "child_events", "silences"}
        assert after["escalations"][0][-2:] == ["basis", "evidence"]
        assert after["acks"][0][-2:] == ["note", "kind"]
        assert after["child_events"][1] == ["ix_child_events_agency_child_at"]
        assert after["silences"][1] == ["ix_silences_agency_ends"]
        with engine.connect() as conn:
            row = conn.execute(text("SELECT basis, evidence FROM escalations")).one()
            assert tuple(row) == (None, None)  # until a rebuild reads the topics again
        command.downgrade(config, "0002")
        assert schema(engine) == before  # columns and indexes as they were
        with engine.connect() as conn:
            assert conn.execute(text("SELECT escalation_id FROM escalations")).scalar() == "esc-0"
            assert conn.execute(text("SELECT who FROM acks")).scalar() == "S-1"
        command.upgrade(config, "head")
        with engine.connect() as conn:
            # The migrations make exactly the models' schema.
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        command.downgrade(config, "0003")
        assert schema(engine) == after
        command.downgrade(config, "base")
        assert schema(engine) == {}
    finally:
        engine.dispose()


def test_two_childrens_episodes_of_one_id_are_two_episodes(engine: Engine) -> None:
    writes: list[Write] = []
    for child in ("C-1", "C-2"):
        writes += project(topics.EVENTS, None, registered(child), NOW)
        writes += project(topics.EVENTS, None, opened(child, "E-1"), NOW)
    writes += project(topics.EVENTS, None, located("C-2", "E-1"), NOW + timedelta(hours=6))
    write_batch(engine, writes, {})
    with engine.connect() as conn:
        rows = conn.execute(
            select(Episode.child_id, Episode.episode_id, Episode.located_event_at).order_by(
                Episode.child_id
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("C-1", "E-1", None),
        ("C-2", "E-1", NOW + timedelta(hours=5)),
    ]


def test_migration_0004_up_and_down_keeps_the_rows(tmp_path: Any) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect, text

    engine = make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    config = alembic(engine)

    def episode_key() -> list[str]:
        return list(inspect(engine).get_pk_constraint("episodes")["constrained_columns"])

    try:
        command.upgrade(config, "0003")
        before = schema(engine)
        with engine.begin() as conn:  # rows projected by the release before
            conn.execute(
                text(
                    "INSERT INTO episodes (agency_id, episode_id, child_id, opened_at)"
                    " VALUES ('demo-agency', 'E-1', 'C-1', '2026-11-24 12:00:00.000000')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO child_events (agency_id, event_id, child_id, event_type,"
                    " occurred_at) VALUES ('demo-agency', 'ev-1', 'C-1', 'missing.opened',"
                    " '2026-11-24 12:00:00.000000')"
                )
            )
        command.upgrade(config, "head")
        after = schema(engine)
        assert episode_key() == ["agency_id", "child_id", "episode_id"]
        assert after["episodes"][0][-4:] == ["state", "county", "last_seen_at", "located_event_at"]
        assert after["episodes"][1] == ["ix_episodes_agency_child"]
        assert after["escalations"][0][-5:] == list(REPORT_COLUMNS)
        assert "ix_escalations_agency_rule" in after["escalations"][1]
        assert after["child_events"][0][-4:] == ["state", "county", "placement_id", "code"]
        assert after["child_events"][1] == [
            "ix_child_events_agency_child_at",
            "ix_child_events_agency_type_at",
        ]
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            row = conn.execute(text("SELECT child_id, state FROM episodes")).one()
            assert tuple(row) == ("C-1", None)  # until a rebuild reads the topics again
        with engine.begin() as conn:  # another child's E-1 is another episode now
            conn.execute(
                text(
                    "INSERT INTO episodes (agency_id, episode_id, child_id, opened_at)"
                    " VALUES ('demo-agency', 'E-1', 'C-0', '2026-11-25 12:00:00.000000')"
                )
            )
        command.downgrade(config, "0003")
        assert schema(engine) == before and episode_key() == ["agency_id", "episode_id"]
        with engine.connect() as conn:
            # One episode per id again: the first child's (by id) stays.
            assert conn.execute(text("SELECT child_id FROM episodes")).scalars().all() == ["C-0"]
            assert conn.execute(text("SELECT event_id FROM child_events")).scalar() == "ev-1"
        command.upgrade(config, "head")
        assert schema(engine) == after
        command.downgrade(config, "base")
        assert schema(engine) == {}
    finally:
        engine.dispose()


# --- the Kafka side: a topic notify has not created yet ---------------------------------------


def test_the_silences_topic_is_read_once_notify_created_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka import TopicPartition

    from services.common.kafka import KafkaClient, KafkaUnavailable
    from services.console import projector as module

    class Consumer:
        def __init__(self, **config: Any) -> None:
            self.partitions: dict[str, set[int]] = {
                topics.EVENTS: {0, 1},
                topics.ESCALATIONS: {0},
                topics.NOTIFICATIONS: {0},
                topics.ACKS: {0},
            }
            self.assigned: list[Any] = []
            self.seeks: dict[Any, int | None] = {}

        def partitions_for_topic(self, topic: str) -> set[int]:
            return self.partitions.get(topic, set())

        def assign(self, tps: list[Any]) -> None:
            self.assigned = list(tps)

        def seek_to_beginning(self, tp: Any) -> None:
            self.seeks[tp] = None

        def seek(self, tp: Any, offset: int) -> None:
            self.seeks[tp] = offset

        def poll(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
            return {}

    monkeypatch.setattr(module, "KafkaConsumer", Consumer)
    clock = [0.0]
    source = module.KafkaSource(KafkaClient(("127.0.0.1:9",)), clock=lambda: clock[0])
    consumer: Any = source.consumer
    source.start({(topics.EVENTS, 1): 42, (topics.SILENCES, 0): 7})
    assert {tp.topic for tp in consumer.assigned} == {
        topics.EVENTS,
        topics.ESCALATIONS,
        topics.NOTIFICATIONS,
        topics.ACKS,
    }
    assert consumer.seeks[TopicPartition(topics.EVENTS, 1)] == 42
    consumer.partitions[topics.SILENCES] = {0, 1}  # notify starts and creates it
    consumer.seeks.clear()
    source.poll(0.1, 10)
    assert len(consumer.assigned) == 5  # not looked for again yet
    clock[0] = module.LOOK_AGAIN_S
    source.poll(0.1, 10)
    assert TopicPartition(topics.SILENCES, 1) in consumer.assigned
    assert len(consumer.assigned) == 7  # the partitions read before are still assigned
    assert consumer.seeks == {  # only the new ones are sought: stored position or beginning
        TopicPartition(topics.SILENCES, 0): 7,
        TopicPartition(topics.SILENCES, 1): None,
    }
    del consumer.partitions[topics.ACKS]  # one of the contract's own topics: refused
    with pytest.raises(KafkaUnavailable):
        source.start({})
