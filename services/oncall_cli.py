"""`carealert oncall who|show`: who an agency's on-call schedules put on call, read from the
policy directory (`agencies/<agency_id>.yaml`, services.notify.oncall). Person ids only: names
and contacts are in the people registry, never printed here.

Exit status: 0 answered; 1 the policy directory has problems (`carealert policy check` lists
them too); 2 a bad argument, an unknown agency, or an agency without schedules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.notify.oncall import Schedule

_MAX_DAYS = 366
_UNTIL_HORIZON = timedelta(days=35)  # how far `who` looks for the end of the current shift


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `oncall who` and `oncall show` on the top-level subcommands."""
    oncall = sub.add_parser("oncall", help="who an agency's on-call schedules put on call")
    commands = oncall.add_subparsers(dest="oncall_command", required=True)
    who = commands.add_parser("who", help="who is on call at a time, for each schedule")
    who.add_argument(
        "--at",
        help="ISO 8601 time (default: now); without an offset, each schedule's local time",
    )
    show = commands.add_parser("show", help="the shifts of each schedule, one line per shift")
    show.add_argument("--days", type=int, default=14, help="how many days (default: 14)")
    show.add_argument(
        "--from",
        dest="start",
        help="ISO 8601 time (default: now); without an offset, each schedule's local time",
    )
    for cmd in (who, show):
        cmd.add_argument("--agency", required=True)
        cmd.add_argument("--policy", type=Path, default=Path("rules"), help="default: rules")


def _fail(message: str, status: int = 2) -> int:
    sys.stderr.write(f"carealert oncall: {message}\n")
    return status


def _time(text: str | None, now: datetime) -> datetime | None:
    """The time given (naive: each schedule's local time, applied by `_at`), or `now`; None if
    it is not ISO 8601."""
    if text is None:
        return now
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _at(given: datetime, schedule: Schedule) -> datetime:
    return given if given.tzinfo is not None else given.replace(tzinfo=schedule.zone)


def _local(at: datetime, schedule: Schedule) -> str:
    from services.notify.oncall import short_local_time

    return short_local_time(at, schedule.zone)


def _schedules(policy: Path, agency_id: str) -> Mapping[str, Schedule] | int:
    """The agency's compiled schedules, or the exit status after saying why there are none."""
    from services.notify.config import RoutingInvalid, load_routing

    try:
        routing = load_routing(policy / "routing.yaml")
    except RoutingInvalid as exc:
        for p in exc.problems:
            sys.stderr.write(f"{policy}/{p}\n")
        return _fail(f"{policy}: {len(exc.problems)} problem(s)", status=1)
    agency = routing.agencies.get(agency_id)
    if agency is None:
        known = ", ".join(sorted(routing.agencies)) or "none"
        return _fail(f"no agency {agency_id!r} in {policy}/agencies (agencies: {known})")
    if not agency.schedules:
        return _fail(
            f"agency {agency_id} has no on-call schedules (`schedules:` in"
            f" {policy}/agencies/{agency_id}.yaml)"
        )
    return agency.schedules


def _who(schedules: Mapping[str, Schedule], given: datetime) -> None:
    rows: list[tuple[str, ...]] = []
    for name, schedule in schedules.items():
        at = _at(given, schedule)
        horizon = at + _UNTIL_HORIZON
        shift = schedule.shifts(at, horizon)[0]
        until = "until at least" if shift.end >= horizon else "until"
        rows.append(
            (
                name,
                shift.person_id or "nobody",
                _local(at, schedule),
                shift.source,
                f"{until} {_local(shift.end, schedule)}",
            )
        )
    _columns(rows)


def _show(schedules: Mapping[str, Schedule], given: datetime, days: int) -> None:
    for name, schedule in schedules.items():
        start = _at(given, schedule)
        end = start + timedelta(days=days)
        sys.stdout.write(
            f"{name} ({schedule.zone.key}): {_local(start, schedule)} to {_local(end, schedule)}\n"
        )
        _columns(
            [
                (
                    f"  {_local(s.start, schedule)}",
                    _local(s.end, schedule),
                    s.person_id or "nobody",
                    s.source,
                )
                for s in schedule.shifts(start, end)
            ]
        )


def _columns(rows: list[tuple[str, ...]]) -> None:
    """Rows as left-aligned columns two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def run(args: argparse.Namespace) -> int:
    """`carealert oncall who|show`; the exit status (see the module docstring). The clock is
    read here, at the edge, only when no time is given."""
    now = datetime.now(UTC)
    text = args.at if args.oncall_command == "who" else args.start
    given = _time(text, now)
    if given is None:
        flag = "--at" if args.oncall_command == "who" else "--from"
        return _fail(f"{flag}: {text!r} is not an ISO 8601 time such as 2026-12-05T17:00")
    if args.oncall_command == "show" and not 1 <= args.days <= _MAX_DAYS:
        return _fail(f"--days: give 1 to {_MAX_DAYS}")
    schedules = _schedules(args.policy, args.agency)
    if isinstance(schedules, int):
        return schedules
    if args.oncall_command == "who":
        _who(schedules, given)
    else:
        _show(schedules, given, args.days)
    return 0
