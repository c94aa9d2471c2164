"""The words messages are made of: local times with zone and offset, how long until (or since)
a deadline, lists and recipient classes in plain English, ages. Pure functions, no I/O.

Times are shown in the zone of the agency whose people read them; the UTC offset goes with the
zone's abbreviation because the deadline itself was computed in the jurisdiction's zone (which
may differ) and because an abbreviation alone is ambiguous (CST) or, around a daylight-saving
change, names two different instants for one wall-clock time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# Fixed English names: strftime's %a and %b follow the process locale.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def utc_offset(at: datetime) -> str:
    """`UTC-06:00` for an aware datetime (whole minutes; zones have no seconds since 1972)."""
    offset = at.utcoffset()
    if offset is None:
        raise ValueError("a naive datetime has no offset")
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def local_time(at: datetime, zone: ZoneInfo) -> str:
    """`Wed 25 Nov 2026, 03:10 CST (UTC-06:00)`: `at` on the wall clock of `zone`, with the
    zone's abbreviation (left out where the tz database has none, only a number such as `-03`)
    and the offset that makes the instant unambiguous. In UTC itself: `Wed 25 Nov 2026, 09:10
    UTC`. Raises ValueError for a naive datetime."""
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no zone")
    local = at.astimezone(zone)
    day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
    clock = f"{local.hour:02d}:{local.minute:02d}"
    abbreviation = local.strftime("%Z")
    offset = utc_offset(local)
    if abbreviation == "UTC" and offset == "UTC+00:00":
        return f"{day}, {clock} UTC"
    if not abbreviation or abbreviation[0] in "+-":
        return f"{day}, {clock} ({offset})"
    return f"{day}, {clock} {abbreviation} ({offset})"


def duration(span: timedelta) -> str:
    """`1 h 50 min`, `2 h`, `45 min`, `3 d 4 h` (minutes left out from a day on), `0 min`.
    Rounded down to the minute: a reader is never told there is more time than there is.
    Raises ValueError for a negative span."""
    if span < timedelta(0):
        raise ValueError("a duration is not negative")
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def due_in(due: datetime, now: datetime) -> str:
    """`in 1 h 50 min`, `overdue by 2 h`, or `due now` within a minute either side of `due`.
    Counted in elapsed time, so a daylight-saving change in between counts as the hour it is."""
    left = due.astimezone(UTC) - now.astimezone(UTC)
    if abs(left) < timedelta(minutes=1):
        return "due now"
    if left > timedelta(0):
        return f"in {duration(left)}"
    return f"overdue by {duration(-left)}"


def overdue_by(due: datetime, now: datetime) -> str:
    """`overdue by 2 h` for a deadline known to have passed; `overdue by less than a minute`
    right after it (or if the clocks disagree and `now` is still before it)."""
    late = now.astimezone(UTC) - due.astimezone(UTC)
    if late < timedelta(minutes=1):
        return "overdue by less than a minute"
    return f"overdue by {duration(late)}"


def join_words(items: Iterable[str]) -> str:
    """`a`, `a and b`, `a, b and c` (no serial comma); the empty string for nothing."""
    words = list(items)
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


CLASS_WORDS: Mapping[str, str] = {
    "caseworker": "the caseworker",
    "supervisor": "the supervisor",
    "director": "the director",
    "on_call": "the on-call worker",
    "law_enforcement": "law enforcement",
    "ncmec": "NCMEC",
    "court": "the court",
    "guardian_ad_litem": "the guardian ad litem",
    "attorney": "the attorney",
    "parent": "the parents",
    "shelter_network": "the shelter network",
    "placement_provider": "the placement provider",
}


def class_words(recipient_class: str) -> str:
    """A recipient class as a reader would name it: `the guardian ad litem`, `NCMEC`."""
    return CLASS_WORDS.get(recipient_class, recipient_class.replace("_", " "))


def recipients_in_words(classes: Iterable[str]) -> str:
    """`the caseworker, the supervisor and NCMEC`: each class once, in the order given."""
    return join_words(class_words(c) for c in dict.fromkeys(classes))


def age_on(date_of_birth: date, day: date) -> int:
    """Whole years from `date_of_birth` to `day` (born 29 February: a year older on 1 March in
    a common year). Negative when `day` is before the birth."""
    had_birthday = (day.month, day.day) >= (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - (0 if had_birthday else 1)


OVERDUE_PREFIX = "OVERDUE: "


def title(action: str, *, overdue: bool) -> str:
    """The plain title of a message: the policy's action (`Report the missing child to NCMEC`);
    for an overdue duty, `Duty overdue: ` and what was due (the engine's default overdue action
    is the duty's action after `OVERDUE: `, which is taken off here)."""
    if not overdue:
        return action
    return f"Duty overdue: {action.removeprefix(OVERDUE_PREFIX)}"


def instant(value: object) -> datetime | None:
    """A datetime, or an RFC 3339 string (as in `evidence`), as an aware datetime; a naive one
    is read as UTC (the contract has every timestamp carry its offset)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def evidence_items(evidence: Mapping[str, object], zone: ZoneInfo) -> list[tuple[str, str]]:
    """An escalation's `evidence` as (label, words): `("risk tier", "high")`, `("fired at",
    "Tue 24 Nov 2026, 03:10 CST (UTC-06:00)")`; times (keys ending `_at`) in `zone`."""
    items: list[tuple[str, str]] = []
    for key, value in evidence.items():
        shown = str(value)
        if isinstance(value, str) and key.endswith("_at"):
            at = instant(value)
            shown = local_time(at, zone) if at else value
        items.append((key.replace("_", " "), shown))
    return items
