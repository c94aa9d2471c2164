"""The read model's pure projection (one record → its upserts) and how a batch is applied:
idempotent, all or nothing with its offsets, and no child's personal data in any row."""

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
from services.console.models import AckRow, Base, Child, Episode, EscalationRow, NotificationRow
from services.console.projection import Unprojectable, Upsert, project
from services.console.projector import Message, project_batch
from services.console.store import load_offsets, write_batch
from services.notify.records import Ack, NotificationRecord, notification_id
from tests.support import make_escalation, make_event, missing_opened, ts

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
AGENCY = "demo-agency"
# What must never reach a row: a name, a description, a date of birth, a photo, a note.
PII = ("Jane Doe", "Janie", "red hoodie", "2011-05-01", "https://photos.example/j.jpg", "mall")


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
        evidence={"age": 15, "date_of_birth": "2011-05-01"},
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


def ack(person: str | None = "S-1") -> bytes:
    return Ack(
        escalation_id="esc-1",
        receiver="supervisor-mail",
        acked_at=NOW + timedelta(minutes=3),
        person_id=person,
        agency_id=AGENCY,
        via="link",
        note="saw Jane Doe at the mall",
    ).to_bytes()


def only(upserts: Sequence[Upsert], table: str) -> dict[str, Any]:
    rows = [dict(u.values) for u in upserts if u.table == table]
    assert len(rows) == 1, rows
    return rows[0]


def assert_no_pii(values: Any) -> None:
    text = json.dumps(values, default=str)
    for secret in PII:
        assert secret not in text


# --- the pure mapping ---------------------------------------------------------------------------


def test_child_registered_keeps_ids_state_county_and_staff_only() -> None:
    upserts = project(topics.EVENTS, b"demo-agency:C-1", registered(), NOW)
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
    upserts = project(topics.EVENTS, None, opened(), NOW)
    assert only(upserts, "episodes") == {
        "agency_id": AGENCY,
        "episode_id": "E-1",
        "child_id": "C-1",
        "opened_at": NOW,
        "closed_at": None,
    }
    child = [u for u in upserts if u.table == "children"][0]
    assert child.update == ("state", "county")  # a missing event never clears the staff
    assert_no_pii([u.values for u in upserts])


def test_missing_located_closes_the_episode_only() -> None:
    upserts = project(topics.EVENTS, None, located(), NOW + timedelta(hours=6))
    episode = [u for u in upserts if u.table == "episodes"][0]
    assert episode.values["closed_at"] == NOW + timedelta(hours=5)
    assert episode.update == ("child_id", "closed_at")  # opened_at stays what it was


def test_escalation_firing_then_resolved() -> None:
    firing = only(project(topics.ESCALATIONS, b"k", escalation("firing")), "escalations")
    assert (firing["status"], firing["fired_at"], firing["resolved_at"]) == ("firing", NOW, None)
    assert (firing["rule_id"], firing["severity"], firing["county"]) == (
        "federal.report-ncmec",
        "high",
        "Jackson",
    )
    resolved_upserts = project(topics.ESCALATIONS, b"k", escalation("resolved"))
    resolved = only(resolved_upserts, "escalations")
    assert (resolved["status"], resolved["resolved_at"]) == ("resolved", NOW + timedelta(hours=6))
    assert "status" in resolved_upserts[0].update
    assert "status" not in project(topics.ESCALATIONS, b"k", escalation("firing"))[0].update
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


def test_ack_keyed_by_person_or_receiver_without_note() -> None:
    by_person = only(project(topics.ACKS, b"esc-1", ack("S-1")), "acks")
    by_receiver = only(project(topics.ACKS, b"esc-1", ack(None)), "acks")
    assert (by_person["who"], by_receiver["who"]) == ("S-1", "receiver:supervisor-mail")
    assert_no_pii([by_person, by_receiver])


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
    assert [u.table for u in batch.upserts] == ["children"]


# --- applying batches on SQLite -----------------------------------------------------------------


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = make_engine("sqlite://")
    migrate(engine)
    yield engine
    engine.dispose()


RECORDS = [
    (topics.EVENTS, registered()),
    (topics.EVENTS, opened()),
    (topics.ESCALATIONS, escalation("firing")),
    (topics.NOTIFICATIONS, notification(1, "retrying")),
    (topics.NOTIFICATIONS, notification(2, "delivered")),
    (topics.ACKS, ack("S-1")),
    (topics.ACKS, ack(None)),
    (topics.EVENTS, located()),
    (topics.ESCALATIONS, escalation("resolved")),
]


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: sorted(tuple(row) for row in conn.execute(select(table)))
            for name, table in Base.metadata.tables.items()
        }


def test_the_same_batch_twice_gives_the_same_rows(engine: Engine) -> None:
    messages = [Message(t, 0, i, None, v, None) for i, (t, v) in enumerate(RECORDS)]
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
        assert conn.execute(select(func.count()).select_from(AckRow)).scalar() == 2
    assert_no_pii(first)
    assert load_offsets(engine) == {
        (topics.EVENTS, 0): 8,
        (topics.ESCALATIONS, 0): 9,
        (topics.NOTIFICATIONS, 0): 5,
        (topics.ACKS, 0): 7,
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
    [upsert] = project(
        topics.NOTIFICATIONS, None, json.dumps({**record, "agency_id": AGENCY}).encode()
    )
    assert upsert.values["agency_id"] == AGENCY
    [older] = project(topics.NOTIFICATIONS, None, notification())
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
