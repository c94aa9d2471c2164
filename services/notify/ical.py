"""An on-call layer kept as an iCalendar feed file (RFC 5545): each event, with its recurrence
(RRULE, RDATE, EXDATE, RECURRENCE-ID), is a shift of the person whose id is in its
`X-CAREALERT-PERSON` property, else its SUMMARY.

The file is read and checked once, when the policy is loaded (`load_feed`); a feed that changes
is read again when the policy is. Recurrences are expanded by `recurring-ical-events` on
demand, per local day of the schedule's zone, and each day is kept, so that asking about the
same days again (every notification of a step, `shifts()` over two weeks, the gap check over
four) costs a dictionary look-up. Pure: no clock reads.

Times: an event with a time zone (TZID, or UTC) is at that instant; a floating one (no zone), an
all-day one (a DATE), and one whose TZID names no zone are local to the schedule's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

PERSON_PROPERTY = "X-CAREALERT-PERSON"
_MAX_CACHED_DAYS = 4000  # about eleven years of days: bounded whatever is asked


class FeedInvalid(ValueError):
    """The feed cannot be used; `reason` says why without quoting the file's text."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, order=True)
class FeedShift:
    """One occurrence of an event: `person_id` on call from `start` to `end` (UTC, end after
    start)."""

    start: datetime
    end: datetime
    person_id: str


def _aware(value: date | datetime, zone: ZoneInfo) -> datetime:
    """An iCalendar DATE or DATE-TIME as an instant: dates are local midnight, floating times
    local wall-clock time, both in `zone`."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone).astimezone(UTC)
    return value.astimezone(UTC)


def _person(component: Any) -> str:
    named = component.get(PERSON_PROPERTY) or component.get("SUMMARY") or ""
    return str(named).strip()


def _bounds(component: Any, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """An event's [start, end), or None if it lasts no time (RFC 5545: a DATE-TIME start without
    DTEND or DURATION is an instant; a DATE start without them is that one day)."""
    begin = component.get("DTSTART").dt
    if component.get("DTEND") is not None:
        finish = component.get("DTEND").dt
    elif component.get("DURATION") is not None:
        finish = begin + component.get("DURATION").dt
    elif isinstance(begin, datetime):
        return None
    else:
        finish = begin + timedelta(days=1)
    start, end = _aware(begin, zone), _aware(finish, zone)
    return (start, end) if end > start else None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


class Feed:
    """A loaded feed: `persons` it names, and `shifts(start, end)` overlapping a window."""

    def __init__(self, query: Any, zone: ZoneInfo, persons: tuple[str, ...]) -> None:
        self._query = query
        self._zone = zone
        self.persons = persons
        self._by_day: dict[date, tuple[FeedShift, ...]] = {}

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    def shifts(self, start: datetime, end: datetime) -> list[FeedShift]:
        """Every occurrence overlapping [start, end) (aware), whole (not clipped), sorted, each
        once."""
        if end <= start:
            return []
        days = _days(self._local_date(start), self._local_date(end - timedelta(microseconds=1)))
        known = {d: self._by_day[d] for d in days if d in self._by_day}
        missing = [d for d in days if d not in known]
        if missing:
            known.update(self._expand(missing[0], missing[-1]))
        found = {s for d in days for s in known[d] if s.start < end and s.end > start}
        return sorted(found)

    def _expand(self, first: date, last: date) -> dict[date, tuple[FeedShift, ...]]:
        """Expand the recurrences of local days first..last (one query), keep them by day and
        return them."""
        lo = _local_midnight(first, self._zone)
        hi = _local_midnight(last + timedelta(days=1), self._zone)
        by_day: dict[date, list[FeedShift]] = {d: [] for d in _days(first, last)}
        for component in self._query.between(lo, hi):
            bounds = _bounds(component, self._zone)
            person = _person(component)
            if bounds is None or not person:
                continue
            shift = FeedShift(bounds[0], bounds[1], person)
            if shift.end <= lo or shift.start >= hi:
                continue
            span_first = max(first, self._local_date(shift.start))
            span_last = min(last, self._local_date(shift.end - timedelta(microseconds=1)))
            for d in _days(span_first, span_last):
                by_day[d].append(shift)
        expanded = {d: tuple(shifts) for d, shifts in by_day.items()}
        if len(self._by_day) + len(expanded) > _MAX_CACHED_DAYS:
            self._by_day.clear()
        self._by_day.update(expanded)
        return expanded


def load_feed(path: Path, zone: ZoneInfo) -> Feed:
    """Read and check a feed file. Raises FeedInvalid when it cannot be read, is not one
    VCALENDAR, has a broken property or recurrence rule, or has an event that names nobody or
    ends before it starts; the reason never quotes the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FeedInvalid(f"cannot read the feed: {exc.strerror or type(exc).__name__}") from None
    try:
        calendar = icalendar.Calendar.from_ical(raw)
    except Exception as exc:  # the parser raises ValueError and others on bad content lines
        raise FeedInvalid(f"not an iCalendar file ({type(exc).__name__})") from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise FeedInvalid("not an iCalendar file: it must be one VCALENDAR")
    persons: list[str] = []
    try:
        for n, event in enumerate(calendar.walk("VEVENT"), start=1):
            person = _person(event)
            if not person:
                raise FeedInvalid(f"event {n} names nobody: give it {PERSON_PROPERTY} or SUMMARY")
            if event.get("DTSTART") is None:
                raise FeedInvalid(f"event {n} ({person}) has no DTSTART")
            begin, finish = event.get("DTSTART").dt, event.get("DTEND")
            if finish is not None and _aware(finish.dt, zone) < _aware(begin, zone):
                raise FeedInvalid(f"event {n} ({person}) ends before it starts")
            if person not in persons:
                persons.append(person)
        query = recurring_ical_events.of(calendar)
    except FeedInvalid:
        raise
    except Exception as exc:  # broken dates, durations, recurrence rules
        raise FeedInvalid(
            f"an event's dates or recurrence cannot be read ({type(exc).__name__})"
        ) from None
    return Feed(query, zone, tuple(persons))
