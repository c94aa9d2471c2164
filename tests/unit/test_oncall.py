"""On-call schedules (services.notify.oncall): handovers at the boundary instant, DST on both
nights of the year in America/Chicago, restrictions, layer and override precedence, gaps and the
fallback person, iCalendar feeds with recurrence, and every compile problem with its message."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.config import ConfigProblem
from services.notify.oncall import (
    Schedule,
    ScheduleSpec,
    Shift,
    compile_schedules,
    gap_problems,
)

CHICAGO = ZoneInfo("America/Chicago")
FILE = "agencies/mo-jackson.yaml"


def specs(text: str) -> list[ScheduleSpec]:
    raw: Any = yaml.safe_load(textwrap.dedent(text))
    return [ScheduleSpec.model_validate(s) for s in raw]


def compiled(
    text: str, policy_dir: Path = Path("/nonexistent"), zone: str = "America/Chicago"
) -> dict[str, Schedule]:
    problems: list[ConfigProblem] = []
    schedules = compile_schedules(specs(text), zone, policy_dir, FILE, problems)
    assert problems == []
    return schedules


def one(text: str, policy_dir: Path = Path("/nonexistent")) -> Schedule:
    (schedule,) = compiled(text, policy_dir).values()
    return schedule


def problems_of(text: str, policy_dir: Path = Path("/nonexistent")) -> list[str]:
    problems: list[ConfigProblem] = []
    compile_schedules(specs(text), "America/Chicago", policy_dir, FILE, problems)
    return [str(p) for p in problems]


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=CHICAGO)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def table(schedule: Schedule, shifts: list[Shift]) -> list[tuple[str, str, str | None, str]]:
    fmt = "%a %m-%d %H:%M %Z"
    return [
        (
            s.start.astimezone(schedule.zone).strftime(fmt),
            s.end.astimezone(schedule.zone).strftime(fmt),
            s.person_id,
            s.source,
        )
        for s in shifts
    ]


# --- rotations ----------------------------------------------------------------------------------

DAILY = """
- name: day
  layers:
    - name: rota
      members: [A, B, C]
      rotation: 1d
      starts: 2026-06-01T08:00:00
"""


@pytest.mark.parametrize(
    ("at", "person"),
    [
        (local(2026, 6, 1, 7, 59), None),  # before `starts`: nobody
        (local(2026, 6, 1, 8, 0), "A"),
        (local(2026, 6, 2, 7, 59), "A"),  # a minute before the handover
        (local(2026, 6, 2, 8, 0), "B"),  # at it: the new member
        (local(2026, 6, 2, 8, 1), "B"),
        (local(2026, 6, 3, 8, 0), "C"),
        (local(2026, 6, 4, 8, 0), "A"),  # round again
        (local(2027, 6, 1, 8, 0), "C"),  # 365 turns later: 365 % 3 == 2
        (local(2026, 6, 2, 7, 59, 59, 999999), "A"),
        (utc(2026, 6, 2, 13, 0), "B"),  # 08:00 CDT, asked in UTC
    ],
)
def test_rotation_hands_over_exactly_at_the_boundary(at: datetime, person: str | None) -> None:
    assert one(DAILY).on_call(at) == person


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="must be aware"):
        one(DAILY).on_call(datetime(2026, 6, 2, 8, 0))


WEEKLY = """
- name: week
  layers:
    - name: rota
      members: [A, B]
      rotation: 7d
      starts: {starts}
"""


def test_weekly_rotation_hands_over_at_0800_local_after_spring_forward() -> None:
    # Clocks go forward on Sunday 2026-03-08: the week from Mon 03-02 is an hour short.
    schedule = one(WEEKLY.format(starts="2026-03-02T08:00:00"))
    assert schedule.on_call(local(2026, 3, 9, 7, 59)) == "A"
    assert schedule.on_call(local(2026, 3, 9, 8, 0)) == "B"
    assert schedule.on_call(utc(2026, 3, 9, 13, 0)) == "B"  # 08:00 CDT
    assert schedule.on_call(utc(2026, 3, 9, 12, 59)) == "A"
    shifts = schedule.shifts(local(2026, 3, 2, 8, 0), local(2026, 3, 16, 8, 0))
    assert [(s.start, s.end, s.person_id) for s in shifts] == [
        (utc(2026, 3, 2, 14, 0), utc(2026, 3, 9, 13, 0), "A"),
        (utc(2026, 3, 9, 13, 0), utc(2026, 3, 16, 13, 0), "B"),
    ]
    assert shifts[0].end - shifts[0].start == timedelta(hours=167)


def test_weekly_rotation_hands_over_at_0800_local_after_fall_back() -> None:
    # Clocks go back on Sunday 2026-11-01: the week from Mon 10-26 is an hour long.
    schedule = one(WEEKLY.format(starts="2026-10-26T08:00:00"))
    assert schedule.on_call(local(2026, 11, 2, 7, 59)) == "A"
    assert schedule.on_call(local(2026, 11, 2, 8, 0)) == "B"
    assert schedule.on_call(utc(2026, 11, 2, 13, 59)) == "A"  # 07:59 CST
    assert schedule.on_call(utc(2026, 11, 2, 14, 0)) == "B"
    (first, second) = schedule.shifts(local(2026, 10, 26, 8, 0), local(2026, 11, 9, 8, 0))
    assert (first.start, first.end) == (utc(2026, 10, 26, 13, 0), utc(2026, 11, 2, 14, 0))
    assert first.end - first.start == timedelta(hours=169)
    assert (second.person_id, second.end) == ("B", utc(2026, 11, 9, 14, 0))


def test_a_handover_at_a_skipped_local_time_happens_an_hour_later() -> None:
    schedule = one(WEEKLY.format(starts="2026-03-01T02:30:00").replace("7d", "1d"))
    # 2026-03-08 02:30 does not exist in Chicago: the clocks go from 02:00 CST to 03:00 CDT.
    assert schedule.on_call(local(2026, 3, 8, 1, 59)) == "A"
    assert schedule.on_call(local(2026, 3, 8, 3, 0)) == "A"
    assert schedule.on_call(local(2026, 3, 8, 3, 29)) == "A"
    assert schedule.on_call(local(2026, 3, 8, 3, 30)) == "B"
    assert schedule.on_call(local(2026, 3, 9, 2, 30)) == "A"  # and back to 02:30 the day after


TWELVE_HOURS = """
- name: halves
  layers:
    - name: rota
      members: [A, B]
      rotation: 12h
      starts: {starts}
"""


def test_a_12h_rotation_counts_elapsed_time_over_spring_forward() -> None:
    schedule = one(TWELVE_HOURS.format(starts="2026-03-07T08:00:00"))  # 14:00Z
    assert schedule.on_call(local(2026, 3, 7, 19, 59)) == "A"
    assert schedule.on_call(local(2026, 3, 7, 20, 0)) == "B"
    # 12 h after 20:00 CST is 09:00 CDT, not 08:00: the clocks skipped an hour.
    assert schedule.on_call(local(2026, 3, 8, 8, 30)) == "B"
    assert schedule.on_call(local(2026, 3, 8, 8, 59)) == "B"
    assert schedule.on_call(local(2026, 3, 8, 9, 0)) == "A"
    assert schedule.on_call(local(2026, 3, 8, 21, 0)) == "B"
    assert all(
        s.end - s.start == timedelta(hours=12)
        for s in schedule.shifts(local(2026, 3, 7, 8, 0), local(2026, 3, 10, 9, 0))
    )


def test_a_12h_rotation_counts_elapsed_time_over_fall_back() -> None:
    schedule = one(TWELVE_HOURS.format(starts="2026-10-31T08:00:00"))  # 13:00Z
    assert schedule.on_call(local(2026, 10, 31, 20, 0)) == "B"
    # 12 h after 20:00 CDT is 07:00 CST: the clocks repeated an hour.
    assert schedule.on_call(local(2026, 11, 1, 6, 59)) == "B"
    assert schedule.on_call(local(2026, 11, 1, 7, 0)) == "A"
    assert schedule.on_call(utc(2026, 11, 1, 13, 0)) == "A"


def test_config_times_are_in_the_schedules_own_zone_unless_they_name_an_offset() -> None:
    schedule = one(
        """
        - name: denver
          time_zone: America/Denver
          layers:
            - {name: rota, members: [A, B], rotation: 1d, starts: 2026-06-01T08:00:00}
          overrides:
            - {person: C, start: "2026-06-03T12:00:00+00:00", end: "2026-06-03T13:00:00+00:00"}
        """
    )
    assert schedule.zone.key == "America/Denver"
    assert schedule.on_call(utc(2026, 6, 2, 13, 59)) == "A"  # 07:59 MDT
    assert schedule.on_call(utc(2026, 6, 2, 14, 0)) == "B"  # 08:00 MDT
    assert schedule.on_call(utc(2026, 6, 3, 12, 0)) == "C"  # the override's own offset
    assert schedule.on_call(utc(2026, 6, 3, 13, 0)) == "B"  # 07:00 MDT: B since 06-02 08:00


# --- restrictions, layers, overrides ------------------------------------------------------------

AFTER_HOURS = """
- name: after-hours
  layers:
    - name: nights
      members: [N1, N2]
      rotation: 7d
      starts: 2026-06-01T08:00:00
      restrictions:
        - {days: [mon, tue, wed, thu, fri], start: "17:00", end: "08:00"}
        - {days: [sat, sun], start: "08:00", end: "08:00"}
"""


@pytest.mark.parametrize(
    ("at", "person"),
    [
        (local(2026, 6, 3, 12, 0), None),  # Wednesday noon: outside every window
        (local(2026, 6, 3, 16, 59), None),
        (local(2026, 6, 3, 17, 0), "N1"),  # the window opens
        (local(2026, 6, 4, 7, 59), "N1"),  # ... and runs into the next morning
        (local(2026, 6, 4, 8, 0), None),
        (local(2026, 6, 5, 17, 0), "N1"),  # Friday night
        (local(2026, 6, 6, 12, 0), "N1"),  # Saturday noon (weekend window)
        (local(2026, 6, 7, 23, 0), "N1"),  # Sunday night
        (local(2026, 6, 8, 7, 59), "N1"),  # Monday 07:59: still N1's week
        (local(2026, 6, 8, 8, 0), None),  # the handover instant is outside every window
        (local(2026, 6, 8, 17, 0), "N2"),  # N2's first night
    ],
)
def test_a_restricted_layer_has_someone_only_inside_its_windows(
    at: datetime, person: str | None
) -> None:
    assert one(AFTER_HOURS).on_call(at) == person


def test_restricted_shifts_cover_the_weekend_as_one_shift() -> None:
    schedule = one(AFTER_HOURS)
    shifts = schedule.shifts(local(2026, 6, 5, 8, 0), local(2026, 6, 9, 8, 0))
    assert table(schedule, shifts) == [
        ("Fri 06-05 08:00 CDT", "Fri 06-05 17:00 CDT", None, "gap"),
        ("Fri 06-05 17:00 CDT", "Mon 06-08 08:00 CDT", "N1", "layer:nights"),
        ("Mon 06-08 08:00 CDT", "Mon 06-08 17:00 CDT", None, "gap"),
        ("Mon 06-08 17:00 CDT", "Tue 06-09 08:00 CDT", "N2", "layer:nights"),
    ]


def test_a_window_ending_at_2400_ends_at_midnight() -> None:
    schedule = one(
        """
        - name: late
          layers:
            - name: l
              members: [A]
              rotation: 1d
              starts: 2026-06-01T00:00:00
              restrictions: [{days: [mon], start: "22:00", end: "24:00"}]
        """
    )
    assert schedule.on_call(local(2026, 6, 1, 21, 59)) is None
    assert schedule.on_call(local(2026, 6, 1, 22, 0)) == "A"
    assert schedule.on_call(local(2026, 6, 1, 23, 59)) == "A"
    assert schedule.on_call(local(2026, 6, 2, 0, 0)) is None
    assert schedule.on_call(local(2026, 6, 2, 22, 0)) is None  # Tuesday: not a listed day


TWO_LAYERS = """
- name: cover
  layers:
    - {name: day, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}
    - name: nights
      members: [B]
      rotation: 1d
      starts: 2026-06-01T08:00:00
      restrictions: [{start: "17:00", end: "08:00"}]
  overrides:
    - {person: C, start: 2026-06-03T12:00:00, end: 2026-06-03T13:00:00}
    - {person: D, start: 2026-06-03T12:30:00, end: 2026-06-03T18:00:00}
"""


@pytest.mark.parametrize(
    ("at", "person"),
    [
        (local(2026, 6, 2, 12, 0), "A"),  # only the first layer has someone
        (local(2026, 6, 2, 18, 0), "B"),  # both do: the later layer wins
        (local(2026, 6, 3, 11, 59), "A"),
        (local(2026, 6, 3, 12, 0), "C"),  # an override wins over every layer
        (local(2026, 6, 3, 12, 29), "C"),
        (local(2026, 6, 3, 12, 30), "D"),  # a later override over an earlier one
        (local(2026, 6, 3, 17, 59), "D"),  # ... and over the night layer
        (local(2026, 6, 3, 18, 0), "B"),
    ],
)
def test_overrides_win_over_later_layers_over_earlier_ones(
    at: datetime, person: str | None
) -> None:
    assert one(TWO_LAYERS).who(at) == person


def test_the_earlier_layer_loses_even_when_listed_last_would_win() -> None:
    reversed_layers = """
    - name: cover
      layers:
        - name: nights
          members: [B]
          rotation: 1d
          starts: 2026-06-01T08:00:00
          restrictions: [{start: "17:00", end: "08:00"}]
        - {name: day, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}
    """
    assert one(reversed_layers).on_call(local(2026, 6, 2, 18, 0)) == "A"


def test_shifts_name_their_source_and_leave_no_holes() -> None:
    schedule = one(TWO_LAYERS)
    start, end = local(2026, 6, 3, 11, 0), local(2026, 6, 4, 9, 0)
    shifts = schedule.shifts(start, end)
    assert table(schedule, shifts) == [
        ("Wed 06-03 11:00 CDT", "Wed 06-03 12:00 CDT", "A", "layer:day"),
        ("Wed 06-03 12:00 CDT", "Wed 06-03 12:30 CDT", "C", "override"),
        ("Wed 06-03 12:30 CDT", "Wed 06-03 18:00 CDT", "D", "override"),
        ("Wed 06-03 18:00 CDT", "Thu 06-04 08:00 CDT", "B", "layer:nights"),
        ("Thu 06-04 08:00 CDT", "Thu 06-04 09:00 CDT", "A", "layer:day"),
    ]
    assert shifts[0].start == start and shifts[-1].end == end
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:], strict=False))
    assert all(s.start.tzinfo == UTC for s in shifts)


def test_a_persons_consecutive_turns_are_one_shift() -> None:
    schedule = one(
        """
        - name: solo
          layers: [{name: l, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}]
        """
    )
    shifts = schedule.shifts(local(2026, 6, 2, 0, 0), local(2026, 6, 5, 0, 0))
    assert [(s.start, s.end, s.person_id) for s in shifts] == [
        (local(2026, 6, 2, 0, 0), local(2026, 6, 5, 0, 0), "A")
    ]


# --- gaps and the fallback person ---------------------------------------------------------------

BUSINESS_HOURS = """
- name: office
  layers:
    - name: desk
      members: [A]
      rotation: 7d
      starts: 2026-11-30T08:00:00
      restrictions: [{days: [mon, tue, wed, thu, fri], start: "08:00", end: "17:00"}]
"""


def test_a_gap_without_fallback_is_a_policy_problem() -> None:
    schedules = compiled(BUSINESS_HOURS)
    schedule = schedules["office"]
    friday_noon = local(2026, 12, 4, 12, 0)
    assert schedule.who(local(2026, 12, 5, 12, 0)) is None
    assert schedule.gaps(friday_noon, local(2026, 12, 8, 12, 0)) == [
        (local(2026, 12, 4, 17, 0), local(2026, 12, 7, 8, 0)),
        (local(2026, 12, 7, 17, 0), local(2026, 12, 8, 8, 0)),
    ]
    assert [str(p) for p in gap_problems(schedules, FILE, friday_noon)] == [
        "agencies/mo-jackson.yaml: schedules.0: schedule 'office' has nobody on call from"
        " Fri 2026-12-04 17:00 CST to Mon 2026-12-07 08:00 CST (America/Chicago) (and 19 more"
        " gap(s) in 28 days); name a fallback_person or fill the gap"
    ]


def test_a_gap_with_a_fallback_person_is_covered_by_them() -> None:
    schedules = compiled(BUSINESS_HOURS + "  fallback_person: S-1\n")
    schedule = schedules["office"]
    saturday = local(2026, 12, 5, 12, 0)
    assert schedule.on_call(saturday) is None  # no layer has anyone ...
    assert schedule.who(saturday) == "S-1"  # ... so the fallback person is on call
    assert schedule.who(local(2026, 12, 4, 12, 0)) == "A"
    assert len(schedule.gaps(saturday, saturday + timedelta(days=1))) == 1
    assert gap_problems(schedules, FILE, local(2026, 12, 4, 12, 0)) == []
    assert table(
        schedule, schedule.shifts(local(2026, 12, 4, 16, 0), local(2026, 12, 7, 9, 0))
    ) == [
        ("Fri 12-04 16:00 CST", "Fri 12-04 17:00 CST", "A", "layer:desk"),
        ("Fri 12-04 17:00 CST", "Mon 12-07 08:00 CST", "S-1", "fallback"),
        ("Mon 12-07 08:00 CST", "Mon 12-07 09:00 CST", "A", "layer:desk"),
    ]


def test_a_schedule_without_gaps_is_no_problem() -> None:
    assert gap_problems(compiled(DAILY), FILE, local(2026, 6, 1, 8, 0)) == []
    # ... but the days before it starts are a gap.
    assert len(gap_problems(compiled(DAILY), FILE, local(2026, 5, 31, 8, 0))) == 1


# --- iCalendar feeds ----------------------------------------------------------------------------

FEED = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//carealert tests//EN
BEGIN:VEVENT
UID:saturdays@test
DTSTART:20261107T080000
DTEND:20261107T200000
RRULE:FREQ=WEEKLY;BYDAY=SA
EXDATE:20261121T080000
SUMMARY: W-1
END:VEVENT
BEGIN:VEVENT
UID:sundays@test
DTSTART;TZID=America/Chicago:20261108T080000
DTEND;TZID=America/Chicago:20261108T200000
RRULE:FREQ=WEEKLY;COUNT=3
SUMMARY:Sunday cover
X-CAREALERT-PERSON:W-2
END:VEVENT
BEGIN:VEVENT
UID:thanksgiving@test
DTSTART;VALUE=DATE:20261126
DTEND;VALUE=DATE:20261127
SUMMARY:W-3
END:VEVENT
BEGIN:VEVENT
UID:late-saturday@test
DTSTART:20261115T020000Z
DTEND:20261115T080000Z
SUMMARY:W-1
END:VEVENT
BEGIN:VEVENT
UID:lunch@test
DTSTART:20261128T120000
DTEND:20261128T130000
SUMMARY:W-4
END:VEVENT
END:VCALENDAR
"""

ICAL = """
- name: weekends
  layers:
    - {name: feed, ical: feeds/weekends.ics}
"""


def feed_dir(tmp_path: Path, text: str = FEED) -> Path:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "weekends.ics").write_text(text.replace("\n", "\r\n"))
    return tmp_path


@pytest.mark.parametrize(
    ("at", "person"),
    [
        (local(2026, 11, 7, 7, 59), None),
        (local(2026, 11, 7, 8, 0), "W-1"),  # a floating time: the schedule's zone
        (local(2026, 11, 7, 19, 59), "W-1"),
        (local(2026, 11, 7, 20, 0), None),
        (local(2026, 11, 14, 12, 0), "W-1"),  # the RRULE's next Saturday
        (local(2026, 11, 21, 12, 0), None),  # ... EXDATE: not that one
        (local(2026, 11, 28, 11, 59), "W-1"),
        (local(2026, 11, 28, 12, 0), "W-4"),  # overlapping events: the later start wins
        (local(2026, 11, 28, 13, 0), "W-1"),
        (local(2026, 11, 8, 8, 0), "W-2"),  # X-CAREALERT-PERSON, not the SUMMARY
        (local(2026, 11, 22, 19, 59), "W-2"),  # COUNT=3: the third Sunday
        (local(2026, 11, 29, 12, 0), None),  # ... and no fourth
        (local(2026, 11, 26, 0, 0), "W-3"),  # an all-day event: local midnight to midnight
        (local(2026, 11, 26, 23, 59), "W-3"),
        (local(2026, 11, 27, 0, 0), None),
        (utc(2026, 11, 15, 2, 0), "W-1"),  # a UTC event (Saturday 20:00 CST)
        (utc(2026, 11, 15, 8, 0), None),
    ],
)
def test_an_ical_layer_follows_its_recurrences(
    tmp_path: Path, at: datetime, person: str | None
) -> None:
    assert one(ICAL, feed_dir(tmp_path)).on_call(at) == person


def test_an_ical_persons_back_to_back_events_are_one_shift(tmp_path: Path) -> None:
    schedule = one(ICAL, feed_dir(tmp_path))
    shifts = schedule.shifts(local(2026, 11, 14, 0, 0), local(2026, 11, 15, 4, 0))
    # Saturday 08:00–20:00 (floating), then 20:00–02:00 CST (in UTC): one shift.
    assert table(schedule, shifts) == [
        ("Sat 11-14 00:00 CST", "Sat 11-14 08:00 CST", None, "gap"),
        ("Sat 11-14 08:00 CST", "Sun 11-15 02:00 CST", "W-1", "layer:feed"),
        ("Sun 11-15 02:00 CST", "Sun 11-15 04:00 CST", None, "gap"),
    ]


def test_a_later_layer_over_an_ical_layer(tmp_path: Path) -> None:
    schedule = one(
        ICAL.rstrip()
        + """
    - name: saturday-mornings
      members: [W-9]
      rotation: 7d
      starts: 2026-11-07T00:00:00
      restrictions: [{days: [sat], start: "06:00", end: "10:00"}]
""",
        feed_dir(tmp_path),
    )
    assert schedule.on_call(local(2026, 11, 14, 9, 59)) == "W-9"
    assert schedule.on_call(local(2026, 11, 14, 10, 0)) == "W-1"


def test_ical_layers_are_fast_over_weeks(tmp_path: Path) -> None:
    schedules = compiled(ICAL, feed_dir(tmp_path))
    begun = time.perf_counter()
    shifts = schedules["weekends"].shifts(local(2026, 11, 1), local(2026, 11, 15))
    problems = gap_problems(schedules, FILE, local(2026, 11, 1))
    asked = [
        schedules["weekends"].on_call(local(2026, 11, 1) + timedelta(minutes=30 * n))
        for n in range(48 * 14)
    ]
    assert time.perf_counter() - begun < 1.0
    assert len(shifts) == 6 and len(problems) == 1 and asked.count("W-2") == 24


def test_people_names_every_person_with_its_path(tmp_path: Path) -> None:
    schedule = one(TWO_LAYERS + "  fallback_person: S-1\n")
    assert schedule.people() == [
        ("layers.0.members.0", "A"),
        ("layers.1.members.0", "B"),
        ("overrides.0.person", "C"),
        ("overrides.1.person", "D"),
        ("fallback_person", "S-1"),
    ]
    assert one(ICAL, feed_dir(tmp_path)).people() == [
        ("layers.0.ical", "W-1"),
        ("layers.0.ical", "W-2"),
        ("layers.0.ical", "W-3"),
        ("layers.0.ical", "W-4"),
    ]


# --- problems -----------------------------------------------------------------------------------


def test_an_unreadable_feed_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    assert problems_of(ICAL, tmp_path) == [
        "agencies/mo-jackson.yaml: schedules.0.layers.0.ical: feeds/weekends.ics: cannot read"
        " the feed: No such file or directory"
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not a calendar\n", "not an iCalendar file (ValueError)"),
        ("", "not an iCalendar file (ValueError)"),
        (
            "BEGIN:VEVENT\nUID:x\nDTSTART:20261107T080000\nSUMMARY:W-1\nEND:VEVENT\n",
            "not an iCalendar file: it must be one VCALENDAR",
        ),
        (
            FEED.replace("RRULE:FREQ=WEEKLY;BYDAY=SA", "RRULE:FREQ=SOMETIMES"),
            "an event's dates or recurrence cannot be read (BadRuleStringFormat)",
        ),
        (
            FEED.replace("EXDATE:20261121T080000", "EXDATE:someday"),
            "an event's dates or recurrence cannot be read (BrokenCalendarProperty)",
        ),
        (
            FEED.replace("SUMMARY:W-3\n", ""),
            "event 3 names nobody: give it X-CAREALERT-PERSON or SUMMARY",
        ),
        (
            FEED.replace("DTEND;VALUE=DATE:20261127", "DTEND;VALUE=DATE:20261125"),
            "event 3 (W-3) ends before it starts",
        ),
    ],
)
def test_a_broken_feed_is_a_problem_naming_the_layer(
    tmp_path: Path, text: str, reason: str
) -> None:
    assert problems_of(ICAL, feed_dir(tmp_path, text)) == [
        f"agencies/mo-jackson.yaml: schedules.0.layers.0.ical: feeds/weekends.ics: {reason}"
    ]


def test_a_broken_feed_problem_never_quotes_the_file(tmp_path: Path) -> None:
    secret = "BEGIN:VCALENDAR\nX-SECRET-LINE-WITHOUT-COLON\nEND:VCALENDAR\n"
    (problem,) = problems_of(ICAL, feed_dir(tmp_path, secret))
    assert "SECRET" not in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """
            - {name: a, layers: [{name: l, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}]}
            - {name: a, layers: [{name: l, members: [B], rotation: 1d, starts: 2026-06-01T08:00:00}]}
            """,
            "schedules.1.name: duplicate schedule name 'a'",
        ),
        (
            """
            - name: a
              time_zone: America/Gotham
              layers: [{name: l, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}]
            """,
            "schedules.0.time_zone: not an IANA time zone (e.g. America/Chicago)",
        ),
        (
            """
            - {name: a, layers: [{name: l, members: [A]}]}
            """,
            "schedules.0.layers.0: lacks rotation and starts: a layer is members, rotation and"
            " starts, or an ical feed",
        ),
        (
            """
            - {name: a, layers: [{name: l}]}
            """,
            "schedules.0.layers.0: lacks members and rotation and starts: a layer is members,"
            " rotation and starts, or an ical feed",
        ),
        (
            """
            - {name: a, layers: [{name: l, members: [A], rotation: 1d, ical: x.ics}]}
            """,
            "schedules.0.layers.0: has both ical and members, rotation: a layer is members,"
            " rotation and starts, or an ical feed",
        ),
        (
            """
            - {name: a, layers: [{name: l, members: [A], rotation: 0m, starts: 2026-06-01T08:00:00}]}
            """,
            "schedules.0.layers.0.rotation: '0m' is not a positive duration like 1d, 7d or 12h",
        ),
        (
            """
            - {name: a, layers: [{name: l, members: [A], rotation: none, starts: 2026-06-01T08:00:00}]}
            """,
            "schedules.0.layers.0.rotation: 'none' is not a positive duration like 1d, 7d or 12h",
        ),
        (
            """
            - {name: a, layers: [{name: l, members: [A], rotation: weekly, starts: 2026-06-01T08:00:00}]}
            """,
            "schedules.0.layers.0.rotation: 'weekly' is not a positive duration like 1d, 7d or 12h",
        ),
        (
            """
            - name: a
              layers:
                - {name: l, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}
                - {name: l, members: [B], rotation: 1d, starts: 2026-06-01T08:00:00}
            """,
            "schedules.0.layers.1.name: duplicate layer name 'l'",
        ),
        (
            """
            - name: a
              layers: [{name: l, members: [A], rotation: 1d, starts: 2026-06-01T08:00:00}]
              overrides:
                - {person: B, start: 2026-06-03T12:00:00, end: 2026-06-03T12:00:00}
            """,
            "schedules.0.overrides.0.end: must be after the start",
        ),
    ],
)
def test_each_schedule_problem_names_file_path_and_reason(text: str, expected: str) -> None:
    assert problems_of(text) == [f"{FILE}: {expected}"]


def test_no_schedules_compile_to_none() -> None:
    problems: list[ConfigProblem] = []
    assert compile_schedules([], "America/Chicago", Path("."), FILE, problems) == {}
    assert problems == []


def test_an_ical_layer_answers_the_same_once_its_day_cache_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_dir = feed_dir(tmp_path)
    start, end = local(2026, 11, 1), local(2026, 11, 29)
    expected = one(ICAL, policy_dir).shifts(start, end)
    monkeypatch.setattr("services.notify.ical._MAX_CACHED_DAYS", 3)
    schedule = one(ICAL, policy_dir)
    schedule.shifts(local(2026, 11, 10), local(2026, 11, 13))  # three days kept ...
    assert schedule.shifts(start, end) == expected  # ... then dropped for the next four weeks
    assert schedule.on_call(local(2026, 11, 14, 12, 0)) == "W-1"
    assert schedule.shifts(start, end) == expected


# --- shifts agree with who, whatever the schedule -----------------------------------------------

HHMM = st.sampled_from(["00:00", "02:30", "08:00", "17:00", "23:59"])
RESTRICTION = st.fixed_dictionaries(
    {
        "days": st.lists(st.sampled_from(["mon", "tue", "sat", "sun"]), min_size=1, unique=True),
        "start": HHMM,
        "end": st.one_of(HHMM, st.just("24:00")),
    }
)
LAYER = st.fixed_dictionaries(
    {
        "members": st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3),
        "rotation": st.sampled_from(["1d", "7d", "12h", "5h", "1d12h"]),
        "starts": st.sampled_from(["2026-03-01T02:30:00", "2026-10-31T08:00:00"]),
        "restrictions": st.lists(RESTRICTION, max_size=2),
    }
)
OVERRIDE = st.builds(
    lambda day, hours, person: {
        "person": person,
        "start": (datetime(2026, 3, 7) + timedelta(days=day)).isoformat(),
        "end": (datetime(2026, 3, 7) + timedelta(days=day, hours=hours)).isoformat(),
    },
    st.integers(0, 3),
    st.integers(1, 30),
    st.sampled_from(["O-1", "O-2"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=st.lists(LAYER, min_size=1, max_size=3),
    overrides=st.lists(OVERRIDE, max_size=2),
    fallback=st.sampled_from([None, "F"]),
)
def test_shifts_agree_with_who_at_every_edge(
    layers: list[dict[str, Any]], overrides: list[dict[str, Any]], fallback: str | None
) -> None:
    spec = {
        "name": "s",
        "layers": [{"name": f"l{j}", **layer} for j, layer in enumerate(layers)],
        "overrides": overrides,
        "fallback_person": fallback,
    }
    problems: list[ConfigProblem] = []
    (schedule,) = compile_schedules(
        [ScheduleSpec.model_validate(spec)], "America/Chicago", Path("."), FILE, problems
    ).values()
    assert problems == []
    # Spring forward on 03-08: the days around it.
    start, end = local(2026, 3, 6, 13, 0), local(2026, 3, 11, 13, 0)
    shifts = schedule.shifts(start, end)
    assert shifts[0].start == start and shifts[-1].end == end
    for before, after in zip(shifts, shifts[1:], strict=False):
        assert before.end == after.start
        assert (before.person_id, before.source) != (after.person_id, after.source)
    for s in shifts:
        for at in (s.start, s.end - timedelta(seconds=1)):
            assert schedule.who(at) == s.person_id
        assert (s.source in ("fallback", "gap")) == (schedule.on_call(s.start) is None)
    gaps = schedule.gaps(start, end)
    assert gaps == [(s.start, s.end) for s in shifts if s.source in ("fallback", "gap")]


def test_overlapping_feed_events_later_start_then_sooner_end_then_smaller_id(
    tmp_path: Path,
) -> None:
    def event(person: str, start: str, end: str) -> str:
        return f"BEGIN:VEVENT\nUID:{person}{start}\nDTSTART:{start}\nDTEND:{end}\nSUMMARY:{person}\nEND:VEVENT\n"

    feed = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//EN\n"
        + event("Z-1", "20261201T080000", "20261201T200000")
        + event("Y-1", "20261201T100000", "20261201T180000")
        + event("X-1", "20261201T100000", "20261201T120000")
        + event("W-2", "20261201T140000", "20261201T150000")
        + event("W-1", "20261201T140000", "20261201T150000")
        + "END:VCALENDAR\n"
    )
    schedule = one(ICAL, feed_dir(tmp_path, feed))
    assert table(schedule, schedule.shifts(local(2026, 12, 1, 8), local(2026, 12, 1, 20))) == [
        ("Tue 12-01 08:00 CST", "Tue 12-01 10:00 CST", "Z-1", "layer:feed"),
        ("Tue 12-01 10:00 CST", "Tue 12-01 12:00 CST", "X-1", "layer:feed"),
        ("Tue 12-01 12:00 CST", "Tue 12-01 14:00 CST", "Y-1", "layer:feed"),
        ("Tue 12-01 14:00 CST", "Tue 12-01 15:00 CST", "W-1", "layer:feed"),
        ("Tue 12-01 15:00 CST", "Tue 12-01 18:00 CST", "Y-1", "layer:feed"),
        ("Tue 12-01 18:00 CST", "Tue 12-01 20:00 CST", "Z-1", "layer:feed"),
    ]
