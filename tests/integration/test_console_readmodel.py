"""The console's read model against the real broker, on a SQLite file and on a real PostgreSQL
server: `carealert console project` in a subprocess, killed (SIGKILL) half way, started again,
then `carealert console rebuild` and projected again: the same rows, none lost, none doubled.

Other tests leave records on these shared topics: every assertion is filtered by this test's own
agency id (children, episodes, child events, escalations, silences) or its escalation ids
(notifications, acks, notes). The migrations go up and down on PostgreSQL too, and the queries
stay fast with 10,000 open escalations on both databases.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine, Select, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from services.common import topics
from services.common.kafka import KafkaClient, ensure_topics
from services.console.db import make_engine
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
from services.console.queries import (
    child_timeline,
    escalation,
    open_escalations,
    silences,
)
from services.notify.records import Ack, NotificationRecord, notification_id
from services.notify.silences import Silence
from tests.integration.notify_support import ACK_SECRET
from tests.support import (
    CAREALERT,
    Service,
    free_port,
    make_escalation,
    make_event,
    missing_opened,
    postgres,
    ts,
    wait_until,
)

pytestmark = pytest.mark.integration


# --- a throw-away PostgreSQL cluster (Debian's binaries) -----------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on a free loopback port (tests.support.postgres), removed at
    teardown."""
    with postgres() as server:
        yield server.database("console")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'console.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- records of one test ---------------------------------------------------------------------


class Traffic:
    """This test's records, with unique ids, published straight to the five topics."""

    def __init__(self, bootstrap: str) -> None:
        self.agency = f"console-{uuid.uuid4().hex[:10]}"
        # notify creates care.silences.v1 (compacted); a broker no notify ran on has none yet.
        ensure_topics(
            KafkaClient.plaintext([bootstrap]),
            partitions=6,
            replication=1,
            names=[topics.SILENCES],
            compacted=True,
        )
        self.producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
        self.now = datetime.now(UTC) - timedelta(minutes=10)

    def close(self) -> None:
        self.producer.close()

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.producer.send(topic, key=key.encode(), value=value)

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def event(self, event: dict[str, Any]) -> None:
        event["agency_id"] = self.agency
        self.send(topics.EVENTS, f"{self.agency}:{event['child_id']}", json.dumps(event).encode())

    def child(self, n: int) -> None:
        """child.registered, missing.opened (with a description), a search effort (free text),
        a screening, a firing escalation, two notification attempts, one acknowledgement and one
        note."""
        child, esc = f"C-{n}", self.escalation_id(n)
        profile = {"date_of_birth": "2011-05-01", "sex": "female", "caseworker_id": f"W-{n}"}
        self.event(make_event("child.registered", profile, child_id=child, occurred_at=self.now))
        description = {"name": "Jane Doe", "clothing": "red hoodie"}
        self.event(
            missing_opened(
                child_id=child, episode_id=f"E-{n}", at=self.now, description=description
            )
        )
        effort = {"episode_id": f"E-{n}", "effort": "searched Jane Doe's aunt's flat"}
        self.event(
            make_event("missing.search_effort", effort, child_id=child, occurred_at=self.now)
        )
        screening = {"episode_id": f"E-{n}", "tool": "cse_it", "result": "possible_concern"}
        self.event(
            make_event("screening.completed", screening, child_id=child, occurred_at=self.now)
        )
        self.escalation(n, "firing")
        for attempt, status in ((1, "retrying"), (2, "delivered")):
            record = NotificationRecord(
                notification_id=notification_id(esc, "caseworker-mail", "0"),
                escalation_id=esc,
                receiver="caseworker-mail",
                recipient_class="caseworker",
                channel="email",
                status=status,
                attempt=attempt,
                step="0",
                escalation_status="firing",
                at=self.now,
            )
            self.send(topics.NOTIFICATIONS, esc, record.to_bytes())
        self.ack(n)
        self.note(n)

    def escalation_id(self, n: int) -> str:
        return f"{self.agency}-esc-{n}"

    def escalation(self, n: int, status: str) -> None:
        esc = make_escalation(
            escalation_id=self.escalation_id(n),
            status=status,
            agency_id=self.agency,
            child_id=f"C-{n}",
            episode_id=f"E-{n}",
            created_at=self.now + timedelta(minutes=5 if status == "resolved" else 0),
            evidence={"age": 15, "date_of_birth": "2011-05-01", "risk_tier": "high"},
        )
        self.send(topics.ESCALATIONS, esc.key, esc.to_bytes())

    def ack(self, n: int) -> None:
        record = Ack(
            escalation_id=self.escalation_id(n),
            receiver="supervisor-mail",
            acked_at=self.now + timedelta(minutes=1),
            person_id="S-1",
            agency_id=self.agency,
            via="link",
            note="on my way to the placement",
        )
        self.send(topics.ACKS, self.escalation_id(n), record.to_bytes())

    def note(self, n: int) -> None:
        """A note added in the console: a `notes` row, never an acknowledgement."""
        record = Ack(
            escalation_id=self.escalation_id(n),
            receiver="console",
            acked_at=self.now + timedelta(minutes=2),
            person_id=f"W-{n}",
            agency_id=self.agency,
            via="console",
            note="called the placement, no answer",
            kind="note",
            note_id=f"note-{n}",
            stops=False,
        )
        self.send(topics.ACKS, self.escalation_id(n), record.to_bytes())

    def located(self, n: int) -> None:
        payload = {"episode_id": f"E-{n}", "located_at": ts(self.now + timedelta(minutes=4))}
        self.event(make_event("missing.located", payload, child_id=f"C-{n}", occurred_at=self.now))

    def silence_id(self, n: int) -> str:
        return f"{self.agency}-silence-{n}"

    def silence(self, n: int, starts_in: timedelta, *, expired: bool = False) -> None:
        record = Silence(
            silence_id=self.silence_id(n),
            agency_id=self.agency,
            match={"rule_id": "risk.tier-changed"},
            starts_at=self.now + starts_in,
            ends_at=self.now + starts_in + timedelta(hours=2),
            reason="policy update",
            created_by="S-1",
            created_at=self.now,
            expired_at=self.now + timedelta(minutes=5) if expired else None,
            expired_by="S-1" if expired else None,
        )
        self.send(topics.SILENCES, self.silence_id(n), record.to_bytes())

    def silence_removed(self, n: int) -> None:
        self.producer.send(topics.SILENCES, key=self.silence_id(n).encode(), value=None)


def rows(engine: Engine, traffic: Traffic) -> dict[str, list[tuple[Any, ...]]]:
    """This test's rows, table by table, sorted."""
    escalation_ids = [traffic.escalation_id(n) for n in range(10)]
    queries: dict[str, Select[Any]] = {
        "children": select(Child).where(Child.agency_id == traffic.agency),
        "episodes": select(Episode).where(Episode.agency_id == traffic.agency),
        "escalations": select(EscalationRow).where(EscalationRow.agency_id == traffic.agency),
        "notifications": select(NotificationRow).where(
            NotificationRow.escalation_id.in_(escalation_ids)
        ),
        "acks": select(AckRow).where(AckRow.escalation_id.in_(escalation_ids)),
        "notes": select(NoteRow).where(NoteRow.escalation_id.in_(escalation_ids)),
        "child_events": select(ChildEventRow).where(ChildEventRow.agency_id == traffic.agency),
        "silences": select(SilenceRow).where(SilenceRow.agency_id == traffic.agency),
    }
    with engine.connect() as conn:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for name, query in queries.items():
            found = [tuple(row) for row in conn.execute(query)]
            out[name] = sorted(found, key=lambda row: [str(value) for value in row])
        return out


def silence_ids(engine: Engine, traffic: Traffic) -> set[str]:
    try:
        with engine.connect() as conn:
            query = select(SilenceRow.silence_id).where(SilenceRow.agency_id == traffic.agency)
            return set(conn.execute(query).scalars())
    except Exception:  # the projector has not migrated the schema yet
        return set()


def counts(engine: Engine, traffic: Traffic) -> dict[str, int]:
    try:
        return {name: len(found) for name, found in rows(engine, traffic).items()}
    except Exception:  # the projector has not migrated the schema yet
        return {}


def wait_for(
    engine: Engine, traffic: Traffic, expected: dict[str, int], proc: subprocess.Popen[bytes]
) -> None:
    """Until this test's rows are exactly `expected`, and still are a second later."""
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, "the projector exited"
        if counts(engine, traffic) == expected:
            time.sleep(1.0)
            assert counts(engine, traffic) == expected
            return
        assert time.monotonic() < deadline, f"{counts(engine, traffic)} != {expected}"
        time.sleep(0.3)


def console(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(CAREALERT), "console", command], env=env, stdout=out, stderr=out
        )


def test_projector_survives_sigkill_and_rebuild(
    bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CAREALERT_DATABASE_URL": database_url,
    }
    log = tmp_path / "console.log"
    traffic = Traffic(bootstrap)
    engine = make_engine(database_url)
    projector = console("project", env, log)
    try:
        for n in range(3):
            traffic.child(n)
        traffic.silence(0, timedelta(0))
        traffic.silence(1, timedelta(hours=1))
        traffic.flush()
        first = {
            "children": 3,
            "episodes": 3,
            "escalations": 3,
            "notifications": 6,
            "acks": 3,
            "notes": 3,
            "child_events": 12,
            "silences": 2,
        }
        wait_for(engine, traffic, first, projector)

        projector.send_signal(signal.SIGKILL)
        projector.wait(timeout=10)
        for n in range(3):
            traffic.located(n)
            traffic.escalation(n, "resolved")
            traffic.ack(n)  # the same person again: their first acknowledgement stands
            traffic.note(n)  # the same note again (a double submit): one note
        for n in range(3, 5):
            traffic.child(n)
        traffic.silence(0, timedelta(0), expired=True)
        traffic.silence_removed(1)
        traffic.silence(2, timedelta(0))
        traffic.silence(3, timedelta(hours=1))
        traffic.flush()
        projector = console("project", env, log)
        second = {
            "children": 5,
            "episodes": 5,
            "escalations": 5,
            "notifications": 10,
            "acks": 5,
            "notes": 5,
            "child_events": 23,
            "silences": 3,
        }
        wait_for(engine, traffic, second, projector)
        wait_until(
            lambda: silence_ids(engine, traffic) == {traffic.silence_id(n) for n in (0, 2, 3)},
            30,
            "the tombstone of silence 1",
        )
        before = rows(engine, traffic)
        statuses = [r[6] for r in before["escalations"]]  # (escalation_id, agency, ..., status)
        assert sorted(statuses) == ["firing", "firing", "resolved", "resolved", "resolved"]
        closed = [r for r in before["episodes"] if r[4] is not None]  # closed_at
        assert len(closed) == 3
        with Session(engine) as session:  # the console's queries, on this database too
            now = open_escalations(session, traffic.agency)
            assert [r.escalation_id for r in now] == [traffic.escalation_id(n) for n in (3, 4)]
            assert all(r.told == 1 and r.acknowledged for r in now)
            assert escalation(session, "another-agency", traffic.escalation_id(3)) is None
            view = escalation(session, traffic.agency, traffic.escalation_id(3))
            assert view is not None
            assert [(n.note_id, n.note) for n in view.notes] == [
                ("note-3", "called the placement, no answer")
            ]
            assert [(a.who, a.note) for a in view.acks] == [("S-1", "on my way to the placement")]
            assert view.row.evidence_items == {"risk_tier": "high"}  # no age, no birth date
            assert view.row.basis == "42 USC 671(a)(35)(B)"
            timeline = child_timeline(session, traffic.agency, "C-0")
            assert timeline is not None and timeline.child is not None
            assert [(e.event_type, e.detail) for e in timeline.events if e.detail] == [
                ("screening.completed", "possible_concern")
            ]
            assert len(timeline.events) == 5 and len(timeline.episodes) == 1
            assert [e.status for e in timeline.escalations] == ["resolved"]
            assert child_timeline(session, "another-agency", "C-0") is None
            at = datetime.now(UTC)
            assert [(v.silence_id, v.state) for v in silences(session, traffic.agency, at)] == [
                (traffic.silence_id(2), "active"),
                (traffic.silence_id(3), "pending"),
            ]
            assert silences(session, "another-agency", at) == []
        assert "Jane Doe" not in repr(before) and "2011-05-01" not in repr(before)
        assert "aunt" not in repr(before)  # an event's free text

        projector.terminate()
        assert projector.wait(timeout=30) == 0
        rebuilt = subprocess.run(
            [str(CAREALERT), "console", "rebuild"], env=env, capture_output=True, timeout=60
        )
        assert rebuilt.returncode == 0, rebuilt.stderr.decode(errors="replace")
        assert counts(engine, traffic) == dict.fromkeys(first, 0)
        projector = console("project", env, log)
        wait_for(engine, traffic, second, projector)
        assert rows(engine, traffic) == before
        assert "Jane Doe" not in log.read_text(errors="replace")
    finally:
        if projector.poll() is None:
            projector.kill()
            projector.wait(timeout=10)
        traffic.close()
        engine.dispose()


def test_the_console_service_projects_and_answers_health_and_metrics(
    bootstrap: str, tmp_path: Path, log_dir: Path
) -> None:
    """`carealert console serve` (what `make run` starts): the projector in a thread, and
    /healthz, /readyz, /metrics on its port; SIGTERM stops it cleanly."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CAREALERT_DATABASE_URL": url,
        "CAREALERT_CONSOLE_PORT": str(port),
        "CAREALERT_ACK_SECRET": ACK_SECRET,  # serve signs the pages' acknowledgements with it
    }
    service = Service(["console", "serve"], env, port, log_dir)
    traffic = Traffic(bootstrap)
    engine = make_engine(url)
    service.start()
    try:
        wait_until(
            lambda: httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200,
            60,
            "console /readyz",
        )
        traffic.child(0)
        traffic.flush()
        assert service.proc is not None
        expected = {
            "children": 1,
            "episodes": 1,
            "escalations": 1,
            "notifications": 2,
            "acks": 1,
            "notes": 1,
            "child_events": 4,
            "silences": 0,
        }
        wait_for(engine, traffic, expected, service.proc)
        metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
        found = re.search(
            r'^carealert_console_records_projected_total\{topic="care.escalations.v1"\} (\S+)$',
            metrics,
            re.M,
        )
        assert found is not None and float(found.group(1)) >= 1
        assert httpx.get(f"{service.url}/v1/anything", timeout=5).status_code == 404
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(timeout=30) == 0
    finally:
        service.stop(kill=True)
        traffic.close()
        engine.dispose()


# --- migrations and scale, on both databases -----------------------------------------------------


def scratch_url(database_url: str, tmp_path: Path) -> str:
    """A database of its own for one test: a new SQLite file, or a new PostgreSQL database in
    the throw-away cluster (the projector tests' rows stay apart)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'scratch.db'}"
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def test_migrations_up_and_down(database_url: str, tmp_path: Path) -> None:
    """0003 on a database the release before migrated (a row in it), down to 0002 (the columns
    and indexes as they were, the row kept), up again, and down to nothing."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from services.console.db import MIGRATIONS

    engine = make_engine(scratch_url(database_url, tmp_path))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine

    def schema() -> dict[str, tuple[list[str], list[str]]]:
        found = inspect(engine)
        return {
            table: (
                sorted(c["name"] for c in found.get_columns(table)),
                sorted(str(i["name"]) for i in found.get_indexes(table)),
            )
            for table in found.get_table_names()
            if table != "alembic_version"
        }

    try:
        command.upgrade(config, "0002")
        before = schema()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO escalations (escalation_id, agency_id, child_id, rule_id,"
                    " severity, status, action, state) VALUES ('esc-0', 'demo-agency', 'C-0',"
                    " 'federal.report-ncmec', 'high', 'firing', 'Report', 'MO')"
                )
            )
        command.upgrade(config, "head")
        after = schema()
        assert set(after) - set(before) == {"notes", "child_events", "silences"}
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            assert conn.execute(text("SELECT basis FROM escalations")).one() == (None,)
        command.downgrade(config, "0002")
        assert schema() == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT escalation_id FROM escalations")).scalar() == "esc-0"
        command.upgrade(config, "head")
        assert schema() == after
        command.downgrade(config, "base")
        assert schema() == {}
    finally:
        engine.dispose()
