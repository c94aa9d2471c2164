"""The compliance report from the console's database: a year of simulated children (figures,
not a test: nothing here asserts a speed; the issue's goal is 20,000 children in 10 s).

    .venv/bin/python -m bench.report_db [--children 20000] [--days 365] [--runs 3]
                                        [--postgres] [--quick]

1. Setup (timed, not the figure): `--children` children over `--days` days from the simulator
   (services.localdev.simulate: four states, one agency), run through the rules engine as the
   live worker runs them (services.rules.offline.VirtualRun, the clock up to the end), and the
   events and the engine's escalations projected into a read model exactly as the console's
   projector writes them (services.console.projection, store.write_batch; no Kafka): a SQLite
   file, and with `--postgres` a throw-away PostgreSQL cluster (bench/console.py's) too.
2. The report: `DatabaseFacts.facts` (services.report.dbsource) for the whole period at its
   end, then `produce` (services.report_cli: the measures, small-cell suppression and the
   rendering) as json and as html; the median of `--runs` runs, each on a new connection.
   Baseline, same run, same database: reading the agency's rows alone (every row of the
   agency's episodes, escalations and child events, fetched, nothing built from them); the
   ratio is the report (facts + produce html) over that.

Writes bench/results/report_db.json (with --quick: 1,000 children, report_db-quick.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from services.common import topics  # noqa: E402
from services.common.events import parse_event_obj  # noqa: E402
from services.console.db import make_engine, migrate  # noqa: E402
from services.console.models import Base  # noqa: E402
from services.console.projection import Upsert, Write, project  # noqa: E402
from services.localdev.simulate import SimConfig, generate  # noqa: E402
from services.report.dbsource import DatabaseFacts  # noqa: E402
from services.report_cli import produce  # noqa: E402
from services.rules.core import Engine as RulesEngine  # noqa: E402
from services.rules.offline import VirtualRun  # noqa: E402
from services.rules.policy import load_policy  # noqa: E402
from tests.support import temp_dir  # noqa: E402

AGENCY = "demo-agency"
ZONE = ZoneInfo("America/Chicago")
BATCH = 20_000  # writes per transaction while loading
T = TypeVar("T")
SHOWN = [
    "children",
    "events",
    "escalation_records",
    "episodes",
    "escalation_rows",
    "engine_s",
    "projection_s",
    "sqlite_load_s",
    "sqlite_rows_s",
    "sqlite_facts_s",
    "sqlite_produce_json_s",
    "sqlite_produce_html_s",
    "sqlite_report_s",
    "sqlite_report_vs_rows",
    "pg_load_s",
    "pg_rows_s",
    "pg_facts_s",
    "pg_report_s",
    "pg_report_vs_rows",
    "goal_s",
]


def timed(run: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def simulated(children: int, days: int, end: datetime) -> tuple[list[Write], dict[str, Any]]:
    """The writes the projector would make for the simulated caseload, and setup figures."""
    events = generate(SimConfig(children=children, days=days, end=end, seed=2026))
    rules = RulesEngine(load_policy(ROOT / "rules"))
    run = VirtualRun(rules)
    records: list[tuple[str, bytes, datetime]] = []
    started = time.perf_counter()
    for raw in events:
        at = datetime.fromisoformat(raw["occurred_at"])
        event = parse_event_obj(raw, now=at)
        emitted = run.apply(event)
        records.append((topics.EVENTS, json.dumps(raw).encode(), at))
        records += [(topics.ESCALATIONS, e.to_bytes(), e.created_at) for e in emitted]
    records += [(topics.ESCALATIONS, e.to_bytes(), end) for e in run.advance(end)]
    engine_s = time.perf_counter() - started
    started = time.perf_counter()
    writes: list[Write] = []
    for topic, value, at in records:
        writes += project(topic, None, value, at)
    figures = {
        "children": children,
        "events": len(events),
        "escalation_records": len(records) - len(events),
        "engine_s": round(engine_s, 1),
        "projection_s": round(time.perf_counter() - started, 1),
    }
    return writes, figures


def load(url: str, writes: list[Write]) -> float:
    """Seconds to write `writes` into a freshly migrated read model, BATCH per transaction.

    The projection's own upserts, applied as store.apply applies each (INSERT .. ON CONFLICT
    of its key, DO UPDATE of its columns or DO NOTHING) but table by table, each table's in
    their order, as one executemany per run of the same statement: the same rows (upserts of
    different tables never touch each other's), written fast enough to set up a year of 20,000
    children. The projector's own rate is bench/console.py's figure."""
    db = make_engine(url)
    try:
        migrate(db)
        started = time.perf_counter()
        for i in range(0, len(writes), BATCH):
            by_table: dict[str, list[Upsert]] = {}
            for write in writes[i : i + BATCH]:
                if not isinstance(write, Upsert):
                    raise ValueError("the simulated caseload makes upserts only")
                by_table.setdefault(write.table, []).append(write)
            with db.begin() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                for name, upserts in by_table.items():
                    table = Base.metadata.tables[name]
                    for (_, key, update), run in groupby(upserts, key=_shape):
                        stmt = dialect.insert(table)
                        if update:
                            stmt = stmt.on_conflict_do_update(
                                index_elements=list(key),
                                set_={column: stmt.excluded[column] for column in update},
                            )
                        else:
                            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
                        conn.execute(stmt, [dict(u.values) for u in run])
        return time.perf_counter() - started
    finally:
        db.dispose()


def _shape(upsert: Upsert) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return tuple(upsert.values), upsert.key, upsert.update


def rows_alone(db: Engine) -> int:
    """The baseline: every row of the agency's episodes, escalations and child events."""
    n = 0
    with db.connect() as conn:
        for name in ("episodes", "escalations", "child_events"):
            table = Base.metadata.tables[name]
            n += len(conn.execute(select(table).where(table.c.agency_id == AGENCY)).all())
    return n


def bench_report(url: str, end: datetime, days: int, runs: int) -> dict[str, Any]:
    """Median seconds of the baseline and of each step of the report, on `url`."""
    period = ((end - timedelta(days=days)).astimezone(ZONE).date(), end.astimezone(ZONE).date())
    out: dict[str, list[float]] = {
        k: [] for k in ("rows", "facts", "produce_json", "produce_html", "report")
    }
    sizes: dict[str, int] = {}
    for _ in range(runs):
        db = make_engine(url)
        try:
            seconds, sizes["rows_read"] = timed(partial(rows_alone, db))
            out["rows"].append(seconds)
        finally:
            db.dispose()
        db = make_engine(url)
        try:
            facts_s, facts = timed(partial(DatabaseFacts(db).facts, AGENCY, end))
        finally:
            db.dispose()
        json_s, _ = timed(partial(produce, facts, AGENCY, period, end, ZONE, "json"))
        html_s, _ = timed(partial(produce, facts, AGENCY, period, end, ZONE, "html"))
        out["facts"].append(facts_s)
        out["produce_json"].append(json_s)
        out["produce_html"].append(html_s)
        out["report"].append(facts_s + html_s)
        sizes["episodes"] = len(facts.episodes)
    figures: dict[str, Any] = {f"{k}_s": round(statistics.median(v), 2) for k, v in out.items()}
    figures["report_vs_rows"] = round(figures["report_s"] / figures["rows_s"], 1)
    figures.update(sizes)
    return figures


def counted(url: str) -> int:
    db = make_engine(url)
    try:
        with db.connect() as conn:
            table = Base.metadata.tables["escalations"]
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        db.dispose()


@contextlib.contextmanager
def maybe_postgres(wanted: bool) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    from bench.console import postgres

    with postgres() as pg:
        yield pg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3, help="timed reports (the median)")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL read model too")
    parser.add_argument("--quick", action="store_true", help="1,000 children, to try the bench")
    args = parser.parse_args()
    if args.quick:
        args.children = 1000
    end = datetime.now(UTC).replace(microsecond=0)
    writes, result = simulated(args.children, args.days, end)
    with temp_dir() as tmp, maybe_postgres(args.postgres) as pg:
        urls = {"sqlite": f"sqlite:///{tmp / 'console.db'}"}
        if pg is not None:
            urls["pg"] = pg.database("report")
        for db, url in urls.items():
            result[f"{db}_load_s"] = round(load(url, writes), 1)
            result["escalation_rows"] = counted(url)
            figures = bench_report(url, end, args.days, args.runs)
            result["episodes"] = figures.pop("episodes")
            result.update({f"{db}_{k}": v for k, v in figures.items()})
    result["goal_s"] = 10
    result["runs"] = args.runs
    result["quick"] = args.quick
    result["cores"] = os.cpu_count()
    result["at"] = datetime.now(UTC).isoformat()
    report(
        "report_db-quick" if args.quick else "report_db", result, [k for k in SHOWN if k in result]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
