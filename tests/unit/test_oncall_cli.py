"""`carealert oncall who|show` on a copy of the shipped policy with schedules of its own (a
rotation, restrictions, an override, an iCalendar feed, a fallback person, a second zone), and
`policy check`'s gap check."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import main, policy_problems
from services.common import yamlio

ROOT = Path(__file__).resolve().parents[2]

SCHEDULES = """
- name: on-call
  layers:
    - name: weekdays
      members: [W-1, W-2]
      rotation: 7d
      starts: "2026-11-30T08:00"
      restrictions: [{days: [mon, tue, wed, thu, fri], start: "08:00", end: "17:00"}]
    - name: weeknights
      members: [C-1, C-2]
      rotation: 7d
      starts: "2026-11-30T08:00"
      restrictions: [{days: [mon, tue, wed, thu], start: "17:00", end: "08:00"}]
    - name: holidays
      ical: feeds/holidays.ics
  overrides:
    - {person: S-2, start: "2026-12-08T12:00", end: "2026-12-08T14:00"}
  fallback_person: S-1
- name: courts
  time_zone: America/Denver
  layers:
    - {name: clerk, members: [W-9], rotation: 1d, starts: "2020-01-01T08:00"}
"""

FEED = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Jackson County//on-call holidays//EN
BEGIN:VEVENT
UID:first-saturday@mo-jackson.example
DTSTART:20261205T090000
DTEND:20261205T130000
RRULE:FREQ=MONTHLY;BYDAY=1SA
SUMMARY:W-3
END:VEVENT
END:VCALENDAR
"""


def policy_copy(tmp_path: Path, schedules: Any) -> Path:
    """rules/ copied, with mo-jackson's schedules replaced by `schedules` and tx-el-paso's
    removed."""
    policy = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", policy)
    for agency_id, value in (("mo-jackson", schedules), ("tx-el-paso", None)):
        path = policy / "agencies" / f"{agency_id}.yaml"
        raw = yamlio.load(path.read_text())
        raw.pop("schedules", None)
        if value is not None:
            raw["schedules"] = value
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (policy / "feeds").mkdir()
    (policy / "feeds" / "holidays.ics").write_text(FEED.replace("\n", "\r\n"))
    return policy


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return policy_copy(tmp_path, yaml.safe_load(SCHEDULES))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def who(capsys: pytest.CaptureFixture[str], policy: Path, at: str) -> tuple[int, str, str]:
    return run(
        capsys, "oncall", "who", "--agency", "mo-jackson", "--at", at, "--policy", str(policy)
    )


def test_who_names_person_source_and_end_of_shift_per_schedule(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A time without an offset is each schedule's own local time.
    assert who(capsys, policy, "2026-12-05T18:00") == (
        0,
        "on-call  S-1  Sat 2026-12-05 18:00 CST  fallback     until Mon 2026-12-07 08:00 CST\n"
        "courts   W-9  Sat 2026-12-05 18:00 MST  layer:clerk  until at least"
        " Sat 2027-01-09 18:00 MST\n",
        "",
    )


@pytest.mark.parametrize(
    ("at", "line"),
    [
        ("2026-12-04T16:59", "on-call  W-1  Fri 2026-12-04 16:59 CST  layer:weekdays"),
        ("2026-12-05T10:00", "on-call  W-3  Sat 2026-12-05 10:00 CST  layer:holidays"),
        ("2026-12-07T08:00", "on-call  W-2  Mon 2026-12-07 08:00 CST  layer:weekdays"),
        ("2026-12-07T17:00", "on-call  C-2  Mon 2026-12-07 17:00 CST  layer:weeknights"),
        ("2026-12-08T12:00-06:00", "on-call  S-2  Tue 2026-12-08 12:00 CST  override"),
        ("2026-12-08T20:00:00Z", "on-call  W-2  Tue 2026-12-08 14:00 CST  layer:weekdays"),
    ],
)
def test_who_at_each_kind_of_shift(
    policy: Path, capsys: pytest.CaptureFixture[str], at: str, line: str
) -> None:
    code, out, err = who(capsys, policy, at)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith(line + " ")


def test_show_prints_one_line_per_shift_in_local_time(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "oncall",
        "show",
        "--agency",
        "mo-jackson",
        "--from",
        "2026-12-04T12:00",
        "--days",
        "4",
        "--policy",
        str(policy),
    )
    assert (code, err) == (0, "")
    assert out == (
        "on-call (America/Chicago): Fri 2026-12-04 12:00 CST to Tue 2026-12-08 12:00 CST\n"
        "  Fri 2026-12-04 12:00 CST  Fri 2026-12-04 17:00 CST  W-1  layer:weekdays\n"
        "  Fri 2026-12-04 17:00 CST  Sat 2026-12-05 09:00 CST  S-1  fallback\n"
        "  Sat 2026-12-05 09:00 CST  Sat 2026-12-05 13:00 CST  W-3  layer:holidays\n"
        "  Sat 2026-12-05 13:00 CST  Mon 2026-12-07 08:00 CST  S-1  fallback\n"
        "  Mon 2026-12-07 08:00 CST  Mon 2026-12-07 17:00 CST  W-2  layer:weekdays\n"
        "  Mon 2026-12-07 17:00 CST  Tue 2026-12-08 08:00 CST  C-2  layer:weeknights\n"
        "  Tue 2026-12-08 08:00 CST  Tue 2026-12-08 12:00 CST  W-2  layer:weekdays\n"
        "courts (America/Denver): Fri 2026-12-04 12:00 MST to Tue 2026-12-08 12:00 MST\n"
        "  Fri 2026-12-04 12:00 MST  Tue 2026-12-08 12:00 MST  W-9  layer:clerk\n"
    )


def test_output_names_person_ids_only(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = who(capsys, policy, "2026-12-04T12:00")
    assert code == 0
    assert "@" not in out and "+1" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("who", "--agency", "nowhere"),
            "carealert oncall: no agency 'nowhere' in {policy}/agencies (agencies: mo-jackson,"
            " tx-el-paso)\n",
        ),
        (
            ("who", "--agency", "tx-el-paso"),
            "carealert oncall: agency tx-el-paso has no on-call schedules (`schedules:` in"
            " {policy}/agencies/tx-el-paso.yaml)\n",
        ),
        (
            ("show", "--agency", "tx-el-paso"),
            "carealert oncall: agency tx-el-paso has no on-call schedules (`schedules:` in"
            " {policy}/agencies/tx-el-paso.yaml)\n",
        ),
        (
            ("who", "--agency", "mo-jackson", "--at", "next tuesday"),
            "carealert oncall: --at: 'next tuesday' is not an ISO 8601 time such as"
            " 2026-12-05T17:00\n",
        ),
        (
            ("show", "--agency", "mo-jackson", "--from", "12/05/2026"),
            "carealert oncall: --from: '12/05/2026' is not an ISO 8601 time such as"
            " 2026-12-05T17:00\n",
        ),
        (
            ("show", "--agency", "mo-jackson", "--days", "0"),
            "carealert oncall: --days: give 1 to 366\n",
        ),
    ],
)
def test_what_cannot_be_answered_exits_2_saying_why(
    policy: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    assert run(capsys, "oncall", *argv, "--policy", str(policy)) == (
        2,
        "",
        message.format(policy=policy),
    )


def test_a_policy_with_problems_exits_1_listing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedules = yaml.safe_load(SCHEDULES)
    schedules[0]["layers"][2]["ical"] = "feeds/missing.ics"
    policy = policy_copy(tmp_path, schedules)
    code, out, err = who(capsys, policy, "2026-12-05T18:00")
    assert (code, out) == (1, "")
    assert err == (
        f"{policy}/agencies/mo-jackson.yaml: schedules.0.layers.2.ical: feeds/missing.ics: cannot"
        " read the feed: No such file or directory\n"
        f"carealert oncall: {policy}: 1 problem(s)\n"
    )


def test_policy_check_refuses_a_schedule_with_gaps_and_no_fallback(tmp_path: Path) -> None:
    schedules = yaml.safe_load(SCHEDULES)
    del schedules[0]["fallback_person"]
    policy = policy_copy(tmp_path, schedules)
    problems = policy_problems(policy)
    gaps = [p for p in problems if "nobody on call" in p]
    assert len(gaps) == 1, problems
    assert gaps[0].startswith(
        f"{policy}/agencies/mo-jackson.yaml: schedules.0: schedule 'on-call' has nobody on call"
        " from "
    )
    assert gaps[0].endswith("; name a fallback_person or fill the gap")


def test_policy_check_accepts_gaps_a_fallback_person_covers(policy: Path) -> None:
    assert [p for p in policy_problems(policy) if "nobody on call" in p] == []
