"""The words of messages: local times with zone and offset (across daylight-saving changes),
time left or overdue, lists and recipient classes, ages, titles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.common.escalations import RECIPIENT_CLASSES
from services.notify.wording import (
    CLASS_WORDS,
    age_on,
    class_words,
    due_in,
    duration,
    join_words,
    local_time,
    overdue_by,
    recipients_in_words,
    title,
    utc_offset,
)

CHICAGO = ZoneInfo("America/Chicago")
DENVER = ZoneInfo("America/Denver")
PHOENIX = ZoneInfo("America/Phoenix")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "zone", "shown"),
    [
        (utc(2026, 11, 25, 9, 10), CHICAGO, "Wed 25 Nov 2026, 03:10 CST (UTC-06:00)"),
        (utc(2026, 7, 4, 17, 0), CHICAGO, "Sat 4 Jul 2026, 12:00 CDT (UTC-05:00)"),
        # The end of daylight saving in Chicago (Sun 1 Nov 2026, 02:00 CDT -> 01:00 CST):
        # 01:30 happens twice; the abbreviation and the offset say which.
        (utc(2026, 11, 1, 6, 30), CHICAGO, "Sun 1 Nov 2026, 01:30 CDT (UTC-05:00)"),
        (utc(2026, 11, 1, 7, 30), CHICAGO, "Sun 1 Nov 2026, 01:30 CST (UTC-06:00)"),
        (utc(2026, 11, 1, 8, 0), CHICAGO, "Sun 1 Nov 2026, 02:00 CST (UTC-06:00)"),
        # Its start (Sun 8 Mar 2026, 02:00 CST -> 03:00 CDT): 02:xx never happens.
        (utc(2026, 3, 8, 7, 59), CHICAGO, "Sun 8 Mar 2026, 01:59 CST (UTC-06:00)"),
        (utc(2026, 3, 8, 8, 0), CHICAGO, "Sun 8 Mar 2026, 03:00 CDT (UTC-05:00)"),
        (utc(2026, 11, 25, 9, 10), DENVER, "Wed 25 Nov 2026, 02:10 MST (UTC-07:00)"),
        (utc(2026, 7, 4, 17, 0), DENVER, "Sat 4 Jul 2026, 11:00 MDT (UTC-06:00)"),
        # Arizona keeps standard time all year: Mountain Standard in July.
        (utc(2026, 7, 4, 17, 0), PHOENIX, "Sat 4 Jul 2026, 10:00 MST (UTC-07:00)"),
        (utc(2026, 1, 4, 17, 0), PHOENIX, "Sun 4 Jan 2026, 10:00 MST (UTC-07:00)"),
        (utc(2026, 11, 25, 9, 10), ZoneInfo("UTC"), "Wed 25 Nov 2026, 09:10 UTC"),
        (
            utc(2026, 11, 25, 9, 10),
            ZoneInfo("Asia/Kolkata"),
            "Wed 25 Nov 2026, 14:40 IST (UTC+05:30)",
        ),
        # A zone the tz database gives only a number for: no made-up abbreviation.
        (
            utc(2026, 11, 25, 9, 10),
            ZoneInfo("America/Sao_Paulo"),
            "Wed 25 Nov 2026, 06:10 (UTC-03:00)",
        ),
        # The local date, not the UTC one: still Tuesday evening in Chicago.
        (utc(2026, 11, 25, 3, 0), CHICAGO, "Tue 24 Nov 2026, 21:00 CST (UTC-06:00)"),
    ],
)
def test_local_time(at: datetime, zone: ZoneInfo, shown: str) -> None:
    assert local_time(at, zone) == shown


def test_local_time_takes_any_offset_and_refuses_a_naive_time() -> None:
    at = datetime(2026, 11, 25, 3, 10, tzinfo=timezone(timedelta(hours=-6)))
    assert local_time(at, DENVER) == "Wed 25 Nov 2026, 02:10 MST (UTC-07:00)"
    with pytest.raises(ValueError):
        local_time(datetime(2026, 11, 25, 3, 10), CHICAGO)


def test_utc_offset() -> None:
    assert utc_offset(utc(2026, 1, 1).astimezone(CHICAGO)) == "UTC-06:00"
    assert utc_offset(utc(2026, 1, 1).astimezone(ZoneInfo("Asia/Kathmandu"))) == "UTC+05:45"
    assert utc_offset(utc(2026, 1, 1)) == "UTC+00:00"


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(0), "0 min"),
        (timedelta(seconds=59), "0 min"),
        (timedelta(minutes=45), "45 min"),
        (timedelta(hours=1, minutes=50), "1 h 50 min"),
        (timedelta(hours=1, minutes=50, seconds=59), "1 h 50 min"),  # never more than there is
        (timedelta(hours=2), "2 h"),
        (timedelta(hours=23, minutes=59), "23 h 59 min"),
        (timedelta(hours=24), "1 d"),
        (timedelta(days=2, hours=23, minutes=59), "2 d 23 h"),
        (timedelta(days=30), "30 d"),
    ],
)
def test_duration(span: timedelta, words: str) -> None:
    assert duration(span) == words


def test_duration_is_never_negative() -> None:
    with pytest.raises(ValueError):
        duration(timedelta(seconds=-1))


NOW = utc(2026, 11, 25, 7, 20)


@pytest.mark.parametrize(
    ("due", "words"),
    [
        (NOW + timedelta(hours=1, minutes=50), "in 1 h 50 min"),
        (NOW - timedelta(hours=2), "overdue by 2 h"),
        (NOW - timedelta(hours=2, minutes=5), "overdue by 2 h 5 min"),
        (NOW, "due now"),
        (NOW + timedelta(seconds=59), "due now"),
        (NOW - timedelta(seconds=59), "due now"),
        (NOW + timedelta(minutes=1), "in 1 min"),
        (NOW - timedelta(minutes=1), "overdue by 1 min"),
        (NOW + timedelta(days=3), "in 3 d"),
    ],
)
def test_due_in(due: datetime, words: str) -> None:
    assert due_in(due, NOW) == words
    # The zone either datetime is in does not matter: the same instants, the same words.
    assert due_in(due.astimezone(CHICAGO), NOW.astimezone(DENVER)) == words


def test_due_in_counts_elapsed_time_across_daylight_saving_changes() -> None:
    # 00:30 CDT to 03:30 CST on 1 Nov 2026 is four hours on the wall clock but five elapsed.
    start = datetime(2026, 11, 1, 0, 30, tzinfo=CHICAGO)
    end = datetime(2026, 11, 1, 3, 30, tzinfo=CHICAGO)
    assert due_in(end, start) == "in 4 h"
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=4)
    # 01:30 CST to 03:30 CDT on 8 Mar 2026: two hours on the wall clock, one elapsed.
    spring_start = datetime(2026, 3, 8, 1, 30, tzinfo=CHICAGO)
    spring_end = datetime(2026, 3, 8, 3, 30, tzinfo=CHICAGO)
    assert due_in(spring_end, spring_start) == "in 1 h"
    assert due_in(spring_start, spring_end) == "overdue by 1 h"


def test_overdue_by() -> None:
    assert overdue_by(NOW - timedelta(hours=2), NOW) == "overdue by 2 h"
    assert overdue_by(NOW - timedelta(seconds=20), NOW) == "overdue by less than a minute"
    assert overdue_by(NOW + timedelta(minutes=5), NOW) == "overdue by less than a minute"


@pytest.mark.parametrize(
    ("items", "words"),
    [
        ([], ""),
        (["a"], "a"),
        (["a", "b"], "a and b"),
        (["a", "b", "c"], "a, b and c"),
    ],
)
def test_join_words(items: list[str], words: str) -> None:
    assert join_words(items) == words


def test_recipient_classes_in_words() -> None:
    assert recipients_in_words(["caseworker", "supervisor", "ncmec"]) == (
        "the caseworker, the supervisor and NCMEC"
    )
    assert recipients_in_words(["supervisor", "supervisor", "director"]) == (
        "the supervisor and the director"
    )
    assert recipients_in_words([]) == ""
    assert class_words("guardian_ad_litem") == "the guardian ad litem"
    assert class_words("law_enforcement") == "law enforcement"
    assert class_words("shelter_network") == "the shelter network"
    assert class_words("some_new_class") == "some new class"


def test_every_recipient_class_has_words() -> None:
    assert set(CLASS_WORDS) == RECIPIENT_CLASSES


@pytest.mark.parametrize(
    ("born", "day", "age"),
    [
        (date(2011, 5, 1), date(2026, 4, 30), 14),
        (date(2011, 5, 1), date(2026, 5, 1), 15),
        (date(2010, 2, 28), date(2026, 2, 28), 16),
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (date(2008, 2, 29), date(2028, 2, 29), 20),
        (date(2026, 5, 1), date(2026, 4, 30), -1),
    ],
)
def test_age_on(born: date, day: date, age: int) -> None:
    assert age_on(born, day) == age


def test_titles() -> None:
    action = "Report the missing child to NCMEC"
    assert title(action, overdue=False) == action
    assert title(f"OVERDUE: {action}", overdue=True) == f"Duty overdue: {action}"
    # A rule's own overdue action (no engine prefix) is kept whole.
    assert title("Call the director", overdue=True) == "Duty overdue: Call the director"
