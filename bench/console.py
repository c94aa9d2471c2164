"""Console figures on the real broker, SQLite and a real PostgreSQL (figures, not a test: nothing
here asserts a speed).

    .venv/bin/python -m bench.console [--records 20000] [--escalations 10000] [--requests 50]
                                      [--children 10] [--quick]

1. Projector: `--records` records across care.events.v1, care.escalations.v1,
   care.notifications.v1 and care.acks.v1 (per child: six events, two firing escalations and the
   first one's resolution, seven notification records, an acknowledgement and a note; built with
   the contract's models) written to Kafka, then a `Projector` with its `KafkaSource` timed from
   an empty read model to caught up (every partition read to its end), into SQLite and into
   PostgreSQL. Baseline, same run, same records: the projector's own `KafkaSource` reading the
   same partitions to their end with nothing projected or written (`consumer_rec_per_s`; the
   ratio is projector / consumer). Also shown, to tell where the time goes: the pure projection
   (`project_batch` in memory, no I/O) and the raw write of the same rows (one executemany per
   table, INSERT .. ON CONFLICT DO NOTHING, one transaction).
2. Pages: a read model of two agencies with `--escalations` open escalations each (three
   notification records each, one in ten acknowledged, a child per three escalations with an
   episode and six events), built through the ORM; the full request through FastAPI's TestClient
   against `create_app` with a signed-in caseworker (Now, its /now/rows fragment, an
   escalation, a child), median and p95 over `--requests`; goal: Now within 200 ms. Baseline:
   the page's reads alone (each in a new ORM session, as the page opens one per read; Now reads
   open_escalations with open_count, open_rules and open_counties; `now_extras`: the last three
   alone, which read every open escalation of the agency, not a page of 200); the ratio is full
   request / reads.
3. POST to Now: `carealert ingest`, `rules` and `console serve` on the broker (console on a SQLite
   file); a caseworker signed in over HTTP; per child, child.registered then missing.opened
   POSTed to ingest, then GET /now/rows every 100 ms until the child is listed. Split by the
   escalation's `fired_at` (when rules fired it): POST to fired (ingest, rules) and fired to
   listed (the projector, the page). A person's browser sees it up to CAREALERT_CONSOLE_REFRESH_S
   (5 s) later on top: the Now page refreshes its rows that often.

Runs 3 first, on a quiet broker, then 1 and 2. Starts a throw-away broker unless
KAFKA_BOOTSTRAP_SERVERS names one (the projector reads whatever else is on those topics too, 3's
records included, and the rates count it: `records_on_topics`), and a throw-away PostgreSQL
cluster (Debian's binaries, fsync on as in production). Writes bench/results/console.json
(with --quick: 2,000 records, 1,000 escalations, 10 requests, 3 children, console-quick.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from services.common import topics  # noqa: E402
from services.common.audit import AuditRecord  # noqa: E402
from services.common.kafka import KafkaClient, ensure_topics  # noqa: E402
from services.common.people import People, Person, hash_password  # noqa: E402
from services.console import queries  # noqa: E402
from services.console.acking import Answer  # noqa: E402
from services.console.context import Console  # noqa: E402
from services.console.db import make_engine, migrate  # noqa: E402
from services.console.metrics import ConsoleMetrics  # noqa: E402
from services.console.models import (  # noqa: E402
    AckRow,
    Base,
    Child,
    ChildEventRow,
    Episode,
    EscalationRow,
    NotificationRow,
)
from services.console.projection import REASONS, TOPICS, Upsert  # noqa: E402
from services.console.projector import KafkaSource, Message, Projector, project_batch  # noqa: E402
from services.console.registry import Registry  # noqa: E402
from services.console.sessions import Lockout, Sessions  # noqa: E402
from services.console.web import create_app  # noqa: E402
from services.notify.config import load_routing  # noqa: E402
from services.notify.records import Ack, NotificationRecord, notification_id  # noqa: E402
from tests.integration.services import AUTH, ingest_service, rules_service  # noqa: E402
from tests.support import (  # noqa: E402
    Postgres,
    Service,
    free_port,
    kafka_bootstrap,
    make_escalation,
    make_event,
    missing_opened,
    registered,
    temp_dir,
    ts,
    wait_until,
)
from tests.support import postgres as throwaway_postgres  # noqa: E402

PASSWORD = f"bench-{secrets.token_hex(8)}"  # not a demo password: the console is not in demo mode
AGENCIES = ("mo-jackson", "tx-el-paso")  # two agencies rules/routing.yaml knows (time zones)
BATCH_MAX = 500  # CAREALERT_CONSOLE_BATCH_MAX's default
NOW_ROWS = 200  # the rows Now shows (services.console.pages.NOW_ROWS)
WARMUP = 3
POLL_S = 0.1


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


# --- a broker and a PostgreSQL server -----------------------------------------------------------


def kafka() -> contextlib.AbstractContextManager[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a throw-away broker stopped at the end."""
    return kafka_bootstrap()


def postgres() -> contextlib.AbstractContextManager[Postgres]:
    """A throw-away PostgreSQL that runs as a server does (fsync on)."""
    return throwaway_postgres(durable=True)


# --- 1. the projector ---------------------------------------------------------------------------

Produced = tuple[str, bytes, bytes]  # topic, key, value


def child_records(agency: str, n: int, at: datetime) -> list[Produced]:
    """One child's traffic as the services write it: six events, two firing escalations and the
    first one's resolution, seven notification records, an acknowledgement and a note."""
    child, episode = f"C-{n:06d}", f"E-{n:06d}"
    event_key = f"{agency}:{child}".encode()

    def event(event_type: str, payload: dict[str, Any], minutes: int) -> Produced:
        body = make_event(
            event_type,
            payload,
            child_id=child,
            agency_id=agency,
            occurred_at=at + timedelta(minutes=minutes),
        )
        return topics.EVENTS, event_key, json.dumps(body).encode()

    out = [
        event(
            "child.registered",
            {
                "date_of_birth": "2011-05-01",
                "sex": "female",
                "caseworker_id": f"W-{n % 40}",
                "supervisor_id": f"S-{n % 8}",
            },
            0,
        ),
        event(
            "missing.opened",
            {"episode_id": episode, "last_seen_at": ts(at), "circumstances": "runaway"},
            1,
        ),
        event(
            "missing.law_enforcement_reported",
            {
                "episode_id": episode,
                "le_agency": "PD",
                "report_number": f"R-{n}",
                "ncic_entry_confirmed": True,
            },
            2,
        ),
        event("missing.search_effort", {"episode_id": episode, "effort": "contact_friends"}, 3),
        event(
            "missing.located",
            {"episode_id": episode, "located_at": ts(at + timedelta(minutes=20))},
            20,
        ),
        event(
            "screening.completed",
            {"episode_id": episode, "tool": "cse_it", "result": "possible_concern"},
            30,
        ),
    ]
    duties = (
        ("federal.report-ncmec", "high", "Report the missing child to NCMEC", 24 * 60),
        ("mo.missing.report-le", "critical", "Report the missing child to law enforcement", 120),
    )
    receivers = (
        ("caseworker-mail", "caseworker", "email"),
        ("supervisor-mail", "supervisor", "email"),
        ("law-enforcement", "law_enforcement", "webhook"),
    )
    escalation_ids = []
    for rule_id, severity, action, due_min in duties:
        esc = make_escalation(
            escalation_id=f"{agency}-{child}-{rule_id}",
            rule_id=rule_id,
            severity=severity,
            action=action,
            agency_id=agency,
            child_id=child,
            episode_id=episode,
            due_at=at + timedelta(minutes=due_min),
            created_at=at + timedelta(minutes=1),
            caseworker_id=f"W-{n % 40}",
            supervisor_id=f"S-{n % 8}",
            evidence={"age": 15, "risk_tier": "high", "last_seen_hours": 2},
            recipients=["caseworker", "supervisor", "law_enforcement"],
        )
        escalation_ids.append(esc.escalation_id)
        out.append((topics.ESCALATIONS, esc.key.encode(), esc.to_bytes()))
        attempts = [(name, cls, channel, "delivered", 1) for name, cls, channel in receivers]
        if len(escalation_ids) == 1:
            attempts.insert(2, ("law-enforcement", "law_enforcement", "webhook", "retrying", 1))
            attempts[-1] = (*attempts[-1][:3], "delivered", 2)
        for receiver, recipient_class, channel, status, attempt in attempts:
            record = NotificationRecord(
                notification_id=notification_id(esc.escalation_id, receiver, "0"),
                escalation_id=esc.escalation_id,
                receiver=receiver,
                recipient_class=recipient_class,
                channel=channel,
                status=status,
                attempt=attempt,
                step="0",
                escalation_status="firing",
                at=at + timedelta(minutes=1, seconds=attempt),
                agency_id=agency,
            )
            out.append((topics.NOTIFICATIONS, esc.escalation_id.encode(), record.to_bytes()))
    first = make_escalation(
        escalation_id=escalation_ids[0],
        status="resolved",
        rule_id=duties[0][0],
        agency_id=agency,
        child_id=child,
        episode_id=episode,
        created_at=at + timedelta(minutes=40),
        evidence={"reported_on_time": True},
    )
    out.append((topics.ESCALATIONS, first.key.encode(), first.to_bytes()))
    ack = Ack(
        escalation_id=escalation_ids[1],
        receiver="supervisor-mail",
        acked_at=at + timedelta(minutes=3),
        person_id=f"S-{n % 8}",
        agency_id=agency,
        via="link",
        note="on my way to the placement",
    )
    note = Ack(
        escalation_id=escalation_ids[1],
        receiver="console",
        acked_at=at + timedelta(minutes=4),
        person_id=f"W-{n % 40}",
        agency_id=agency,
        via="console",
        note="called the placement, no answer",
        kind="note",
        note_id=secrets.token_hex(16),
        stops=False,
    )
    for acked in (ack, note):
        out.append((topics.ACKS, acked.escalation_id.encode(), acked.to_bytes()))
    return out


def traffic(agency: str, records: int) -> list[Produced]:
    at = datetime.now(UTC) - timedelta(hours=2)
    out: list[Produced] = []
    n = 0
    while len(out) < records:
        out += child_records(agency, n, at)
        n += 1
    return out[:records]


def produce(bootstrap: str, records: list[Produced]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], acks="all", linger_ms=20, batch_size=256 * 1024
    )
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def ends(bootstrap: str) -> dict[TopicPartition, int]:
    """Where every partition of the projector's topics ends now (committed records)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], isolation_level="read_committed")
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in TOPICS
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        found: dict[TopicPartition, int] = consumer.end_offsets(tps)
        return found
    finally:
        consumer.close()


def read_to(source: KafkaSource, end: Mapping[TopicPartition, int]) -> bool:
    """Whether `source` has read every partition to `end`."""
    return all(source.consumer.position(tp) >= offset for tp, offset in end.items())


def consumer_rate(bootstrap: str, end: Mapping[TopicPartition, int]) -> tuple[float, int]:
    """(records/s, records) of the projector's KafkaSource alone: every partition from its
    beginning to `end`, nothing projected, nothing written."""
    source = KafkaSource(KafkaClient.plaintext([bootstrap]))
    try:
        started = time.perf_counter()
        source.start({})
        seen = 0
        deadline = time.monotonic() + 600
        while not read_to(source, end):
            seen += len(source.poll(0.5, BATCH_MAX))
            if time.monotonic() > deadline:
                raise TimeoutError("the consumer did not read the topics in 10 minutes")
        return seen / (time.perf_counter() - started), seen
    finally:
        source.close()


class CaughtUp(Projector):
    """The projector, stopping itself once its source has read every partition to `end`."""

    def __init__(
        self,
        source: KafkaSource,
        engine: Engine,
        metrics: ConsoleMetrics,
        end: Mapping[TopicPartition, int],
    ) -> None:
        super().__init__(source, engine, metrics, batch_max=BATCH_MAX, poll_s=0.5)
        self.kafka_source = source
        self.end = end
        self.consumed = 0
        self.deadline = time.monotonic() + 1200

    def step(self) -> int:
        n = super().step()
        self.consumed += n
        if read_to(self.kafka_source, self.end):
            self.stop.set()
        elif time.monotonic() > self.deadline:
            raise TimeoutError("the projector did not catch up in 20 minutes")
        return n


def projector_rate(
    bootstrap: str, url: str, end: Mapping[TopicPartition, int]
) -> tuple[float, int, int]:
    """(records/s, records, skipped) of a Projector from an empty read model to caught up."""
    engine = make_engine(url)
    try:
        migrate(engine)
        metrics = ConsoleMetrics(CollectorRegistry())
        projector = CaughtUp(KafkaSource(KafkaClient.plaintext([bootstrap])), engine, metrics, end)
        started = time.perf_counter()
        projector.run(threading.Event())
        elapsed = time.perf_counter() - started
        skipped = sum(
            metrics.registry.get_sample_value(
                "carealert_console_records_skipped_total", {"reason": reason}
            )
            or 0
            for reason in REASONS
        )
        return projector.consumed / elapsed, projector.consumed, int(skipped)
    finally:
        engine.dispose()


def projection_rate(records: list[Produced]) -> tuple[float, list[Upsert]]:
    """(records/s, upserts) of the pure projection of `records` in batches, no I/O. Raises
    ValueError when the bench's own records are not valid (a bug here, not in the console)."""
    now_ms = int(time.time() * 1000)
    messages = [
        Message(topic, 0, i, key, value, now_ms) for i, (topic, key, value) in enumerate(records)
    ]
    upserts: list[Upsert] = []
    started = time.perf_counter()
    for i in range(0, len(messages), BATCH_MAX):
        batch = project_batch(messages[i : i + BATCH_MAX])
        if batch.skipped:
            raise ValueError(f"the bench wrote records the read model skips: {batch.skipped}")
        upserts += [w for w in batch.upserts if isinstance(w, Upsert)]
    return len(records) / (time.perf_counter() - started), upserts


def executemany_rate(url: str, upserts: list[Upsert], records: int) -> float:
    """Records/s when the rows of `records` are written raw: one INSERT .. ON CONFLICT DO
    NOTHING executemany per table, in one transaction, on a freshly migrated database."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for upsert in upserts:
        by_table.setdefault(upsert.table, []).append(dict(upsert.values))
    engine = make_engine(url)
    try:
        migrate(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            for name, rows in by_table.items():
                table = Base.metadata.tables[name]
                conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
        return records / (time.perf_counter() - started)
    finally:
        engine.dispose()


def bench_projector(
    bootstrap: str, records: int, sqlite_url: Callable[[str], str], pg: Postgres
) -> dict[str, Any]:
    agency = f"bench-{uuid.uuid4().hex[:8]}"
    mine = traffic(agency, records)
    pure, upserts = projection_rate(mine)
    produce(bootstrap, mine)
    end = ends(bootstrap)
    consumer, read = consumer_rate(bootstrap, end)
    out: dict[str, Any] = {
        "records": records,
        "records_on_topics": read,
        "rows_per_record": round(len(upserts) / records, 2),
        "consumer_rec_per_s": round(consumer),
        "projection_rec_per_s": round(pure),
    }
    for db, url in (("sqlite", sqlite_url("raw")), ("pg", pg.database("raw"))):
        out[f"{db}_executemany_rec_per_s"] = round(executemany_rate(url, upserts, records))
    for db, url in (("sqlite", sqlite_url("projected")), ("pg", pg.database("projected"))):
        rate, consumed, skipped = projector_rate(bootstrap, url, end)
        out[f"{db}_projector_rec_per_s"] = round(rate)
        out[f"{db}_projector_vs_consumer"] = round(rate / consumer, 3)
        out[f"{db}_projector_skipped"] = skipped
        out[f"{db}_projector_records"] = consumed
    return out


# --- 2. the pages ------------------------------------------------------------------------------


@dataclass
class TinyRecorder:
    """notify's acknowledgements, in memory (the pages timed here never call it)."""

    async def acknowledge(
        self, agency_id: str, person_id: str, escalation_id: str, note: str | None
    ) -> Answer:
        del agency_id, person_id, escalation_id, note
        return Answer("recorded", stops=True)

    async def add_note(
        self, agency_id: str, person_id: str, escalation_id: str, note: str, note_id: str
    ) -> Answer:
        del agency_id, person_id, escalation_id, note, note_id
        return Answer("recorded")


@dataclass
class TinyAudit:
    """The audit trail, counted in memory (the pages write a record per view)."""

    written: int = 0

    async def __call__(self, record: AuditRecord) -> None:
        del record
        self.written += 1


@dataclass(frozen=True)
class Picked:
    agency: str
    escalation_id: str
    child_id: str


def build_read_model(url: str, per_agency: int, now: datetime) -> Picked:
    """Two agencies of `per_agency` open escalations each, written through the ORM: three
    notification records per escalation, one in ten acknowledged, a child per three
    escalations with one episode and six events."""
    engine = make_engine(url)
    severities = ("critical", "high", "medium", "low")
    rules = ("federal.report-ncmec", "mo.missing.report-le", "federal.screen-on-return")
    counties = ("Jackson", "Clay", "Platte", "Cass")
    try:
        migrate(engine)
        for agency in AGENCIES:
            escalations: list[dict[str, Any]] = []
            notifications: list[dict[str, Any]] = []
            acks: list[dict[str, Any]] = []
            children: list[dict[str, Any]] = []
            episodes: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for i in range(per_agency):
                child = f"C-{i // 3:06d}"
                esc = f"{agency}-esc-{i:06d}"
                fired = now - timedelta(minutes=5 + i % 600)
                if i % 3 == 0:
                    children.append(
                        {
                            "agency_id": agency,
                            "child_id": child,
                            "state": "MO",
                            "county": counties[i % 4],
                            "caseworker_id": f"W-{i % 40}",
                            "supervisor_id": f"S-{i % 8}",
                        }
                    )
                    episodes.append(
                        {
                            "agency_id": agency,
                            "episode_id": f"E-{child}",
                            "child_id": child,
                            "opened_at": fired - timedelta(hours=1),
                            "closed_at": None,
                        }
                    )
                    for k, event_type in enumerate(
                        (
                            "child.registered",
                            "placement.started",
                            "missing.opened",
                            "missing.law_enforcement_reported",
                            "missing.ncmec_reported",
                            "missing.search_effort",
                        )
                    ):
                        events.append(
                            {
                                "agency_id": agency,
                                "event_id": f"{child}-ev-{k}",
                                "child_id": child,
                                "episode_id": f"E-{child}" if k >= 2 else None,
                                "event_type": event_type,
                                "occurred_at": fired - timedelta(hours=1, minutes=-k),
                                "detail": None,
                            }
                        )
                escalations.append(
                    {
                        "escalation_id": esc,
                        "agency_id": agency,
                        "child_id": child,
                        "episode_id": f"E-{child}",
                        "rule_id": rules[i % 3],
                        "severity": severities[i % 4],
                        "status": "firing",
                        "action": "Report the missing child to law enforcement",
                        "state": "MO",
                        "county": counties[i % 4],
                        "caseworker_id": f"W-{i % 40}",
                        "supervisor_id": f"S-{i % 8}",
                        "due_at": None if i % 20 == 0 else now + timedelta(minutes=i % 2880 - 120),
                        "fired_at": fired,
                        "resolved_at": None,
                        "basis": "42 USC 671(a)(35)(B)",
                        "evidence": '{"risk_tier": "high"}',
                    }
                )
                for receiver, recipient_class, channel in (
                    ("caseworker-mail", "caseworker", "email"),
                    ("supervisor-mail", "supervisor", "email"),
                    ("law-enforcement", "law_enforcement", "webhook"),
                ):
                    notifications.append(
                        {
                            "notification_id": notification_id(esc, receiver, "0"),
                            "status": "delivered" if i % 7 else "failed",
                            "attempt": 1,
                            "escalation_id": esc,
                            "receiver": receiver,
                            "recipient_class": recipient_class,
                            "channel": channel,
                            "step": "0",
                            "escalation_status": "firing",
                            "at": fired + timedelta(seconds=2),
                            "agency_id": agency,
                        }
                    )
                if i % 10 == 0:
                    acks.append(
                        {
                            "escalation_id": esc,
                            "who": f"S-{i % 8}",
                            "receiver": "supervisor-mail",
                            "person_id": f"S-{i % 8}",
                            "person_agency_id": agency,
                            "via": "link",
                            "stops": True,
                            "acked_at": fired + timedelta(minutes=2),
                            "note": "on my way",
                            "kind": None,
                        }
                    )
            with DbSession(engine) as session:
                for model, rows in (
                    (EscalationRow, escalations),
                    (NotificationRow, notifications),
                    (AckRow, acks),
                    (Child, children),
                    (Episode, episodes),
                    (ChildEventRow, events),
                ):
                    for i in range(0, len(rows), 5000):
                        session.execute(insert(model), rows[i : i + 5000])
                session.commit()
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after such a load: without statistics PostgreSQL plans
            # these tables as empty (a sequential scan of every notification for Now's counts).
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
        return Picked(AGENCIES[0], f"{AGENCIES[0]}-esc-000000", "C-000000")
    finally:
        engine.dispose()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if not found:
        raise RuntimeError("no CSRF field on the sign-in page")
    return found.group(1)


def sign_in(client: TestClient | httpx.Client, agency: str, person: str) -> None:
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"agency": agency, "person": person, "password": PASSWORD, "csrf": _csrf(page.text)},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in answered {answer.status_code}")


def timed(run: Callable[[], None], n: int) -> list[float]:
    for _ in range(WARMUP):
        run()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        out.append(time.perf_counter() - started)
    return out


def bench_pages(url: str, per_agency: int, requests: int) -> dict[str, Any]:
    picked = build_read_model(url, per_agency, datetime.now(UTC))
    digest = hash_password(PASSWORD)
    people = People(
        Person.model_validate(
            {
                "id": "W-1",
                "agency_id": agency,
                "name": "Bench Caseworker",
                "roles": ["caseworker"],
                "password_hash": digest,
            }
        )
        for agency in AGENCIES
    )
    engine = make_engine(url)
    audit = TinyAudit()
    console = Console(
        engine=engine,
        routing=load_routing(ROOT / "rules" / "routing.yaml"),
        staff=Registry(None, people=people),
        recorder=TinyRecorder(),
        audit=audit,
        sessions=Sessions(idle_s=900),
        lockout=Lockout(failures=5, window_s=900),
    )
    out: dict[str, Any] = {}
    try:
        with TestClient(create_app(console), follow_redirects=False) as client:
            sign_in(client, picked.agency, "W-1")
            shown = client.get("/now").text.count('<tr class="sev-')
            out["now_rows_shown"] = shown
            agency, esc, child = picked.agency, picked.escalation_id, picked.child_id

            def page_rows(s: DbSession) -> object:
                # Now's rows as services.console.pages reads them: the first 200, and how many
                # there are when there are more.
                rows = queries.open_escalations(s, agency, limit=NOW_ROWS)
                return rows, queries.open_count(s, agency) if len(rows) == NOW_ROWS else 0

            # Each page's reads, each in a session of its own as the page opens one per read.
            pages: dict[str, tuple[str, list[Callable[[DbSession], object]]]] = {
                "now": (
                    "/now",
                    [
                        page_rows,
                        lambda s: queries.open_rules(s, agency),
                        lambda s: queries.open_counties(s, agency),
                    ],
                ),
                "rows": ("/now/rows", [page_rows]),
                "escalation": (
                    f"/escalations/{esc}",
                    [lambda s: queries.escalation(s, agency, esc)],
                ),
                "child": (
                    f"/children/{child}",
                    [lambda s: queries.child_timeline(s, agency, child)],
                ),
            }
            for name, (path, reads) in pages.items():

                def get(path: str = path) -> None:
                    answer = client.get(path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"GET {path} answered {answer.status_code}")

                def read(reads: list[Callable[[DbSession], object]] = reads) -> None:
                    for query in reads:
                        with DbSession(engine) as session:
                            query(session)

                full = timed(get, requests)
                alone = timed(read, requests)
                out[f"{name}_p50_ms"] = ms(statistics.median(full))
                out[f"{name}_p95_ms"] = ms(percentile(full, 0.95))
                out[f"{name}_query_p50_ms"] = ms(statistics.median(alone))
                out[f"{name}_full_vs_query"] = round(
                    statistics.median(full) / statistics.median(alone), 1
                )

            def whole_range() -> None:
                # What reads every open escalation of the agency, not only the page of 200.
                with DbSession(engine) as session:
                    queries.open_count(session, agency)
                    queries.open_rules(session, agency)
                    queries.open_counties(session, agency)

            out["now_extras_p50_ms"] = ms(statistics.median(timed(whole_range, requests)))
    finally:
        engine.dispose()
    return out


# --- 3. from POST to Now ------------------------------------------------------------------------


@dataclass
class Seen:
    posted: float
    fired: float
    listed: float


@dataclass
class Pipeline:
    ingest: Service
    rules: Service
    console: Service
    db_url: str
    started: list[Service] = field(default_factory=list)

    def stop(self) -> None:
        for service in reversed(self.started):
            service.stop()


def start_pipeline(bootstrap: str, tmp: Path) -> Pipeline:
    users = tmp / "console-people.yaml"
    users.write_text(
        json.dumps(
            {
                "version": 1,
                "people": [
                    {
                        "id": "W-1",
                        "agency_id": "demo-agency",
                        "name": "Bench Caseworker",
                        "roles": ["caseworker"],
                        "password_hash": hash_password(PASSWORD),
                    }
                ],
            }
        )
    )
    db_url = f"sqlite:///{tmp / 'console.db'}"
    port = free_port()
    console = Service(
        ["console", "serve"],
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CAREALERT_DATABASE_URL": db_url,
            "CAREALERT_CONSOLE_PORT": str(port),
            "CAREALERT_POLICY_DIR": str(ROOT / "rules"),
            "CAREALERT_USERS_FILE": str(users),
            "CAREALERT_ACK_SECRET": secrets.token_urlsafe(32),
            "CAREALERT_LOG_LEVEL": "WARNING",
        },
        port,
        tmp,
    )
    pipeline = Pipeline(
        ingest_service(bootstrap, tmp),
        rules_service(bootstrap, tmp, f"bench-console-{uuid.uuid4().hex[:6]}", tmp / "rules"),
        console,
        db_url,
    )
    try:
        for service in (pipeline.ingest, pipeline.rules, pipeline.console):
            service.start()
            pipeline.started.append(service)
        for service in (pipeline.rules, pipeline.console):
            ready = f"{service.url}/readyz"
            wait_until(lambda: httpx.get(ready).status_code == 200, 120, ready)  # noqa: B023
    except BaseException:
        pipeline.stop()
        raise
    return pipeline


def one_child(pipeline: Pipeline, client: httpx.Client, timeout: float) -> Seen:
    """POST child.registered then missing.opened; poll /now/rows until the child is listed."""
    child = f"D-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=pipeline.ingest.url, headers=AUTH, timeout=30) as ingest:
        answer = ingest.post("/v1/events", json=registered(child, datetime.now(UTC)))
        if answer.status_code != 202:
            raise RuntimeError(f"ingest answered {answer.status_code}")
        posted = time.time()
        answer = ingest.post("/v1/events", json=missing_opened(child_id=child))
        if answer.status_code != 202:
            raise RuntimeError(f"ingest answered {answer.status_code}")
    deadline = time.monotonic() + timeout
    tick = time.monotonic()
    while child not in client.get("/now/rows").text:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child} not on Now after {timeout} s")
        tick += POLL_S
        time.sleep(max(0.0, tick - time.monotonic()))
    listed = time.time()
    engine = make_engine(pipeline.db_url)
    try:
        with DbSession(engine) as session:
            fired = session.execute(
                select(func.min(EscalationRow.fired_at)).where(
                    EscalationRow.agency_id == "demo-agency", EscalationRow.child_id == child
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return Seen(posted, fired.timestamp() if fired is not None else listed, listed)


def bench_delay(bootstrap: str, tmp: Path, children: int) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    pipeline = start_pipeline(bootstrap, tmp)
    try:
        with httpx.Client(base_url=pipeline.console.url, timeout=30) as client:
            sign_in(client, "demo-agency", "W-1")
            # The first child warms up every service (and lets rules and the projector work
            # through whatever an existing broker held): not counted.
            one_child(pipeline, client, 600)
            seen = [one_child(pipeline, client, 120) for _ in range(children)]
    finally:
        pipeline.stop()
    total = [s.listed - s.posted for s in seen]
    rules = [s.fired - s.posted for s in seen]
    console = [s.listed - s.fired for s in seen]
    return {
        "children": children,
        "post_to_now_p50_ms": ms(statistics.median(total)),
        "post_to_now_max_ms": ms(max(total)),
        "post_to_fired_p50_ms": ms(statistics.median(rules)),
        "post_to_fired_max_ms": ms(max(rules)),
        "fired_to_now_p50_ms": ms(statistics.median(console)),
        "fired_to_now_max_ms": ms(max(console)),
        "now_poll_ms": ms(POLL_S),
        "page_refresh_s": 5,
    }


# --- main ---------------------------------------------------------------------------------------

SHOWN = [
    "records",
    "consumer_rec_per_s",
    "projection_rec_per_s",
    "sqlite_executemany_rec_per_s",
    "sqlite_projector_rec_per_s",
    "sqlite_projector_vs_consumer",
    "pg_executemany_rec_per_s",
    "pg_projector_rec_per_s",
    "pg_projector_vs_consumer",
    "escalations_per_agency",
    "sqlite_now_p50_ms",
    "sqlite_now_p95_ms",
    "sqlite_now_query_p50_ms",
    "sqlite_now_full_vs_query",
    "sqlite_now_extras_p50_ms",
    "sqlite_escalation_p50_ms",
    "sqlite_child_p50_ms",
    "pg_now_p50_ms",
    "pg_now_p95_ms",
    "pg_now_query_p50_ms",
    "pg_now_full_vs_query",
    "pg_now_extras_p50_ms",
    "pg_escalation_p50_ms",
    "pg_child_p50_ms",
    "post_to_now_p50_ms",
    "post_to_now_max_ms",
    "post_to_fired_p50_ms",
    "fired_to_now_p50_ms",
    "fired_to_now_max_ms",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--escalations", type=int, default=10_000, help="open ones per agency")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    parser.add_argument("--children", type=int, default=10, help="children POSTed in part 3")
    parser.add_argument("--quick", action="store_true", help="small figures, to try the bench")
    args = parser.parse_args()
    if args.quick:
        args.records, args.escalations, args.requests, args.children = 2000, 1000, 10, 3
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temp_dir())
        bootstrap = stack.enter_context(kafka())
        pg = stack.enter_context(postgres())
        ensure_topics(KafkaClient.plaintext([bootstrap]), partitions=6, replication=1)

        def sqlite_url(name: str) -> str:
            return f"sqlite:///{tmp / f'{name}.db'}"

        # The delay first, on a quiet broker: after part 1, rules would still be firing the
        # overdue duties of its children and the console projecting them.
        delay = bench_delay(bootstrap, tmp / "pipeline", args.children)
        result.update(bench_projector(bootstrap, args.records, sqlite_url, pg))
        result["escalations_per_agency"] = args.escalations
        for db, url in (("sqlite", sqlite_url("pages")), ("pg", pg.database("pages"))):
            pages = bench_pages(url, args.escalations, args.requests)
            result.update({f"{db}_{k}": v for k, v in pages.items()})
        result.update(delay)
    result["requests_per_page"] = args.requests
    result["quick"] = args.quick
    result["cores"] = os.cpu_count()
    result["at"] = datetime.now(UTC).isoformat()
    report("console-quick" if args.quick else "console", result, SHOWN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
