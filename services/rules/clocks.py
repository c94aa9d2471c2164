"""Statutory clocks: deadlines as the policy writes them (`due`), computed on the local calendar
of the jurisdiction. Pure: the start instant and the jurisdiction are passed in.

| `due` | the deadline (stored in UTC) |
|---|---|
| `none` | no deadline, no overdue step |
| `now` | the start: a broadcast, no overdue step |
| `immediately` | the start plus the policy's `immediately_grace` (default 1 h) |
| `24h`, `90m`, `1d12h` | the start plus that much elapsed time |
| `2d` (days only) | the same local wall-clock time that many calendar days later |
| `2 business days` | local midnight ending the 2nd business day after the start's date |
| `end of next business day` | the same as `1 business day` |

Business days skip Saturdays, Sundays and the jurisdiction's public holidays (US federal plus
the state's, observed dates included, from the `holidays` package). A duty discharged at exactly
its deadline is on time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from services.common.durations import DURATION_RE, parse_duration
from services.common.zones import zone_of

Kind = Literal["none", "now", "immediately", "elapsed", "calendar_days", "business_days"]
DEFAULT_GRACE = timedelta(hours=1)
BUSINESS_RE = re.compile(r"^(?P<n>\d+) business days?$")
NEXT_BUSINESS_DAY = ("end of next business day", "by end of the next business day")
MAX_BUSINESS_DAYS = 60
# The longest run of non-business days in a US state calendar (Texas: 24 to 28 December when
# Christmas falls on a Thursday, with a weekend; a week for safety): bounds a business-day
# deadline for the federal floor.
LONGEST_CLOSURE = timedelta(days=7)

DUE_FORMS = (
    "none, now, immediately, an elapsed time like 24h or 90m, calendar days like 2d, "
    "'2 business days' or 'end of next business day'"
)


@dataclass(frozen=True)
class Due:
    """A parsed `due`. `amount`: the elapsed time, or the number of days."""

    kind: Kind
    amount: timedelta = timedelta(0)
    days: int = 0

    @property
    def has_overdue(self) -> bool:
        """Whether missing it is possible (`none` and `now` are not deadlines)."""
        return self.kind not in ("none", "now")

    def at(self, start: datetime, zone: ZoneInfo, state: str, grace: timedelta) -> datetime | None:
        """The deadline for a duty that starts at `start` in a jurisdiction of `state` whose
        local zone is `zone`; None for `none`."""
        if self.kind == "none":
            return None
        if self.kind == "now":
            return start
        if self.kind == "immediately":
            return start + grace
        if self.kind == "elapsed":
            return start + self.amount
        local = start.astimezone(zone)
        if self.kind == "calendar_days":
            wall = local.replace(tzinfo=None) + timedelta(days=self.days)
            return _localise(wall, zone)
        day = local.date()
        for _ in range(self.days):
            day = next_business_day(day, state)
        return _localise(datetime.combine(day + timedelta(days=1), time()), zone)

    def bounds(self, grace: timedelta) -> tuple[timedelta, timedelta] | None:
        """The shortest and longest time this deadline can give, whatever the start (None
        for `none`): a state may only make a federal deadline sooner."""
        if self.kind == "none":
            return None
        if self.kind == "now":
            return timedelta(0), timedelta(0)
        if self.kind == "immediately":
            return grace, grace
        if self.kind == "elapsed":
            return self.amount, self.amount
        if self.kind == "calendar_days":
            # A daylight-saving change can make a calendar day 23 or 25 hours.
            shift = timedelta(hours=self.days and 1)
            return timedelta(days=self.days) - shift, timedelta(days=self.days) + shift
        closures = (self.days // 5 + 1) * LONGEST_CLOSURE
        return timedelta(days=self.days), timedelta(days=self.days + 1) + closures

    def words(self, grace: timedelta) -> str:
        """For people: "within 2 business days", "immediately (1 h grace)"."""
        if self.kind == "none":
            return "no deadline"
        if self.kind == "now":
            return "now (a broadcast, no deadline)"
        if self.kind == "immediately":
            return f"immediately ({_span(grace)} grace)"
        if self.kind == "elapsed":
            return f"within {_span(self.amount)}"
        unit = "calendar day" if self.kind == "calendar_days" else "business day"
        return f"within {self.days} {unit}{'s' if self.days != 1 else ''}"

    def formula(self, grace: timedelta) -> str:
        """How the deadline is computed, for an analyst checking it against the statute."""
        if self.kind == "none":
            return "due_at = none"
        if self.kind == "now":
            return "due_at = start (no overdue step)"
        if self.kind == "immediately":
            return f"due_at = start + {_span(grace)}"
        if self.kind == "elapsed":
            return f"due_at = start + {_span(self.amount)}"
        if self.kind == "calendar_days":
            return f"due_at = local(start) + {self.days} calendar days, same wall-clock time"
        return (
            f"due_at = local midnight ending the {ordinal(self.days)} business day after "
            "local date(start), skipping weekends and holidays"
        )


def parse_due(text: str) -> Due:
    """A `due` as the policy writes it; ValueError naming the accepted forms."""
    if text in ("none", "now", "immediately"):
        return Due(text)  # type: ignore[arg-type]  # the literal itself
    if text in NEXT_BUSINESS_DAY:
        return Due("business_days", days=1)
    business = BUSINESS_RE.match(text)
    if business:
        days = int(business["n"])
        if not 1 <= days <= MAX_BUSINESS_DAYS:
            raise ValueError(f"business days must be 1 to {MAX_BUSINESS_DAYS}")
        return Due("business_days", days=days)
    m = DURATION_RE.match(text)
    if text and m is not None and m["d"] and not (m["h"] or m["m"] or m["s"]):
        if int(m["d"]) == 0:
            raise ValueError(f"{text!r} is no time at all: use now or immediately")
        return Due("calendar_days", days=int(m["d"]))
    try:
        amount = parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a deadline: use {DUE_FORMS}") from None
    assert amount is not None  # "none" is handled above
    if amount <= timedelta(0):
        raise ValueError(f"{text!r} is no time at all: use now or immediately")
    return Due("elapsed", amount=amount)


@cache
def _holidays(state: str, year: int) -> frozenset[date]:
    try:
        calendar = holidays.country_holidays("US", subdiv=state, years=year)
    except NotImplementedError:  # a code the package does not know: federal holidays
        calendar = holidays.country_holidays("US", years=year)
    return frozenset(calendar)


def is_business_day(day: date, state: str) -> bool:
    return day.weekday() < 5 and day not in _holidays(state, day.year)


def next_business_day(day: date, state: str) -> date:
    day += timedelta(days=1)
    while not is_business_day(day, state):
        day += timedelta(days=1)
    return day


def local_date(instant: datetime, state: str, county: str | None) -> date:
    """The calendar date in the jurisdiction at `instant` (any UTC offset gives the same)."""
    return instant.astimezone(zone_of(state, county)).date()


def _localise(wall: datetime, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as a UTC instant. A time the spring-forward skips counts with
    the offset before the change (02:30 becomes 03:30 daylight time); a time the fall-back
    repeats is the first of the two (PEP 495 `fold=0`)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _span(delta: timedelta) -> str:
    """`24 h`, `90 min`, `1 h 30 min`: hours and minutes, as statutes count elapsed time."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts) or "0 s"
