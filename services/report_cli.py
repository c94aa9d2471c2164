"""`carealert report`: an agency's compliance and trends report for a period (docs/report.md),
as html (a self-contained printable page with its charts), csv (for analysts) or json.

    carealert report --agency mo-jackson --from 2026-01-01 --to 2026-03-31 \\
        [--events export.jsonl | --database URL] --format html --out q1.html

The facts come from the console's read model (`--database URL`; without `--events`, the
console's own: CAREALERT_DATABASE_URL, else its default SQLite file), read as they stood at the
report date (services.report.dbsource), or from a JSON-lines export of events (`--events`), run
through the rules engine as `carealert replay` runs them (`--policy`, default rules). Either
way the Facts go to `produce`. The period's dates, and a date given as `--as-of`, are on the
agency's clock: `--time-zone`, else `time_zone` in the policy's `agencies/<agency>.yaml`, else
the zone of the jurisdiction of the agency's events (when they are all in one).

Exit status: 0 written; 1 the events file, the database, the policy or the agency file has
problems (listed; no report written; the database's address, a secret, is never shown); 2 a
bad argument.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from services.common.events import EventBase
    from services.report.facts import Facts
    from services.report.render import Format


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `report` on the top-level subcommands."""
    from services.report.render import FORMATS

    report = sub.add_parser(
        "report", help="an agency's compliance and trends report for a period (html, csv, json)"
    )
    report.add_argument("--agency", required=True, help="the agency's id")
    report.add_argument(
        "--from", dest="period_from", required=True, help="first day, YYYY-MM-DD (agency's clock)"
    )
    report.add_argument(
        "--to", dest="period_to", required=True, help="last day, YYYY-MM-DD (included)"
    )
    report.add_argument(
        "--as-of",
        help="the report date: YYYY-MM-DD (the end of that day) or an ISO 8601 time (without an"
        " offset: the agency's clock); default: now",
    )
    source = report.add_mutually_exclusive_group()
    source.add_argument("--events", type=Path, help="JSON lines, one Event per line (an export)")
    source.add_argument(
        "--database",
        metavar="URL",
        help="the console's read model, a SQLAlchemy URL (default, without --events:"
        " CAREALERT_DATABASE_URL, else the console's default)",
    )
    report.add_argument("--format", choices=FORMATS, default="html")
    report.add_argument("--out", type=Path, help="file to write (default: standard output)")
    report.add_argument("--policy", type=Path, default=Path("rules"), help="default: rules")
    report.add_argument(
        "--time-zone", help="IANA zone of the agency's clock (default: the agency file's)"
    )


def _fail(message: str, status: int = 2) -> int:
    sys.stderr.write(f"carealert report: {message}\n")
    return status


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def as_of_instant(text: str | None, zone: ZoneInfo, now: datetime) -> datetime | None:
    """`--as-of`: a date is the end of that day on the agency's clock (its next midnight); a
    time without an offset is on that clock; none is `now`. None if unreadable."""
    if text is None:
        return now
    day = _day(text)
    if day is not None:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    try:
        given = datetime.fromisoformat(text)
    except ValueError:
        return None
    return given if given.tzinfo is not None else given.replace(tzinfo=zone)


def read_events(path: Path) -> tuple[list[tuple[int, EventBase]], list[str]]:
    """Every event of the file with its line number, and a line per problem (as `replay`
    reports them: the line and the fields, never a value)."""
    from services.common.events import EventInvalid, parse_event

    events: list[tuple[int, EventBase]] = []
    problems: list[str] = []
    with path.open("rb") as lines:
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                events.append((n, parse_event(line)))
            except EventInvalid as exc:
                problems.append(f"{path}:{n}: {exc.reason}")
    return events, problems


def agency_clock(policy: Path, agency_id: str) -> tuple[ZoneInfo | None, str | None, list[str]]:
    """The agency's zone and name from its file in the policy directory (None, None if it has
    none), and the policy directory's routing problems."""
    from services.notify.config import RoutingInvalid, load_routing

    if not (policy / "agencies" / f"{agency_id}.yaml").is_file():
        return None, None, []
    try:
        routing = load_routing(policy / "routing.yaml")
    except RoutingInvalid as exc:
        return None, None, [f"{policy}/{p}" for p in exc.problems]
    agency = routing.agencies.get(agency_id)
    if agency is None:
        return None, None, []
    return agency.view.zone, agency.view.name, []


def jurisdiction_zone(events: list[tuple[int, EventBase]]) -> ZoneInfo | None:
    """The one zone all the events' jurisdictions are in (None: several, or no event)."""
    from services.common.zones import zone_name

    names = {zone_name(e.jurisdiction.state, e.jurisdiction.county) for _, e in events}
    return ZoneInfo(names.pop()) if len(names) == 1 else None


def facts_from_file(
    events: list[tuple[int, EventBase]], policy: Path, as_of: datetime
) -> Facts | list[str]:
    """Facts from the file's events that occurred by `as_of`, in occurred_at order (the file's
    order for equal times), or the problems (a policy that does not load, an event id sent
    twice with different content)."""
    from services.report.facts import FactsBuilder
    from services.rules.core import ConflictingDuplicate, Engine
    from services.rules.policy import PolicyInvalid, load_policy

    try:
        policy_loaded = load_policy(policy)
    except PolicyInvalid as exc:
        return [f"{policy}/{p}" for p in exc.problems]
    builder = FactsBuilder(Engine(policy_loaded))
    problems: list[str] = []
    for n, event in sorted(
        ((n, e) for n, e in events if e.occurred_at <= as_of),
        key=lambda pair: (pair[1].occurred_at, pair[0]),
    ):
        try:
            builder.add(event)
        except ConflictingDuplicate:
            problems.append(f"line {n}: event_id seen before with different content")
    return problems or builder.finish(as_of)


def produce(
    facts: Facts,
    agency_id: str,
    period: tuple[date, date],
    as_of: datetime,
    zone: ZoneInfo,
    fmt: Format,
    agency_name: str | None = None,
) -> str:
    """The report's text from Facts of any source (the seam for `--database`)."""
    from services.report.measures import compute
    from services.report.render import render

    report = compute(facts, agency_id, period[0], period[1], as_of, zone)
    return render(report, fmt, agency_name)


def run(args: argparse.Namespace, now: datetime | None = None) -> int:
    """`carealert report`; the exit status (module docstring). The clock is read here, at the
    edge, only when `--as-of` is not given."""
    start, end = _day(args.period_from), _day(args.period_to)
    if start is None:
        return _fail(f"--from: {args.period_from!r} is not a date written YYYY-MM-DD")
    if end is None:
        return _fail(f"--to: {args.period_to!r} is not a date written YYYY-MM-DD")
    if end < start:
        return _fail("--to: the period ends before it starts")
    given_zone: ZoneInfo | None = None
    if args.time_zone:
        try:
            given_zone = ZoneInfo(args.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return _fail(f"--time-zone: {args.time_zone!r} is not an IANA time zone")
    if args.events is None:
        return _from_database(args, (start, end), given_zone, now)
    try:
        events, problems = read_events(args.events)
    except OSError as exc:
        return _fail(f"{exc.filename}: {exc.strerror}", status=1)
    events = [(n, e) for n, e in events if e.agency_id == args.agency]
    zone, name, routing_problems = agency_clock(args.policy, args.agency)
    problems += routing_problems
    if problems:
        return _problems(problems)
    zone = given_zone or zone or jurisdiction_zone(events)
    if zone is None:
        return _no_clock(args)
    as_of = _report_date(args, start, zone, now)
    if isinstance(as_of, int):
        return as_of
    facts = facts_from_file(events, args.policy, as_of)
    if isinstance(facts, list):
        return _problems(facts)
    return _write(args, facts, (start, end), as_of, zone, name)


def _from_database(
    args: argparse.Namespace,
    period: tuple[date, date],
    given_zone: ZoneInfo | None,
    now: datetime | None,
) -> int:
    """The report from the console's read model (services.report.dbsource). Its URL is a
    secret (it may hold a password): no message shows it, nor a driver's error text."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.console.db import DEFAULT_URL
    from services.report.dbsource import DatabaseFacts, ReadModelNotReady

    zone, name, problems = agency_clock(args.policy, args.agency)
    if problems:
        return _problems(problems)
    url = args.database or os.environ.get("CAREALERT_DATABASE_URL") or DEFAULT_URL
    engine = _read_engine(url)
    if engine is None:
        return _fail("the database holds no read model (`carealert console project` creates it)", 1)
    try:
        source = DatabaseFacts(engine)
        source.check()
        if given_zone is None and zone is None:
            zones = source.zones(args.agency)
            zone = ZoneInfo(zones.pop()) if len(zones) == 1 else None
        zone = given_zone or zone
        if zone is None:
            return _no_clock(args)
        as_of = _report_date(args, period[0], zone, now)
        if isinstance(as_of, int):
            return as_of
        facts = source.facts(args.agency, as_of)
    except ReadModelNotReady as exc:
        return _fail(str(exc), status=1)
    except SQLAlchemyError as exc:
        return _fail(f"the database could not be read ({type(exc).__name__})", status=1)
    finally:
        engine.dispose()
    return _write(args, facts, period, as_of, zone, name)


def _read_engine(url: str) -> Engine | None:
    """An engine that reads `url`; None for a SQLite file that is not there (it is not
    created). Raises nothing for a server that does not answer: the first query does."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        if not Path(parsed.database).is_file():
            return None
        return create_engine(url, connect_args={"timeout": 30})
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError):
        return None


def _no_clock(args: argparse.Namespace) -> int:
    return _fail(
        f"no clock for agency {args.agency}: no {args.policy}/agencies/{args.agency}.yaml and"
        " its events are in several time zones (or none); give --time-zone"
    )


def _report_date(
    args: argparse.Namespace, start: date, zone: ZoneInfo, now: datetime | None
) -> datetime | int:
    """The report date, or the exit status of a bad --as-of."""
    as_of = as_of_instant(args.as_of, zone, now or datetime.now(UTC))
    if as_of is None:
        return _fail(f"--as-of: {args.as_of!r} is not a date or an ISO 8601 time")
    if as_of < datetime.combine(start, time(0), tzinfo=zone):
        return _fail("--as-of: the report date is before the period starts")
    return as_of


def _write(
    args: argparse.Namespace,
    facts: Facts,
    period: tuple[date, date],
    as_of: datetime,
    zone: ZoneInfo,
    name: str | None,
) -> int:
    from services.report.suppression import SuppressionFailed

    start, end = period
    try:
        text = produce(facts, args.agency, (start, end), as_of, zone, args.format, name)
    except SuppressionFailed as exc:
        return _fail(f"{exc}; no report written", status=1)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {args.out}\n")
    return 0


def _problems(problems: list[str]) -> int:
    for p in problems:
        sys.stderr.write(f"{p}\n")
    return _fail(f"{len(problems)} problem(s); no report written", status=1)
