"""The report's outputs (json, csv, html) and `carealert report`, on the hand-built caseload of
test_report_measures: what is shown, what is hidden, and that nothing about a child is."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.cli import main
from services.report.facts import Facts
from services.report.measures import Report, compute
from services.report.render import Shown, shown, to_csv, to_html, to_json
from services.report.suppression import COMPLEMENTARY, PRIMARY, recoverable
from tests.unit.test_report_measures import AGENCY, AS_OF, EASTERN, MARCH, caseload
from tests.unit.test_report_suppression import unrecoverable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(facts: Facts) -> Report:
    return compute(facts, AGENCY, *MARCH, AS_OF, EASTERN)


@pytest.fixture(scope="module")
def facts(engine: Any) -> Facts:
    from services.report.facts import facts_from_events

    return facts_from_events(caseload().parsed(), engine, AS_OF)


@pytest.fixture(scope="module")
def view(report: Report) -> Shown:
    return shown(report)


def cells(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (table["id"], row["id"], column): cell
        for table in doc["tables"]
        for row in table["rows"]
        for column, cell in row["cells"].items()
    }


def identifying(events: list[dict[str, Any]]) -> set[str]:
    """Every child id, event id, episode id, name and date of birth in the events."""
    found: set[str] = set()
    for e in events:
        found |= {e["child_id"], e["event_id"]}
        payload = e["payload"]
        for field in ("episode_id", "date_of_birth", "placement_id", "report_number"):
            if field in payload:
                found.add(payload[field])
        if "description" in payload:
            found.add(payload["description"]["name"])
    return found


def leaks(text: str, values: set[str]) -> list[str]:
    """The values that appear in `text` as a whole word (letters, digits, '-' and '_')."""
    words = set(re.findall(r"[\w-]+", text))
    return sorted(
        v
        for v in values
        if v in words
        or (
            not re.fullmatch(r"[\w-]+", v)
            and re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text)
        )
    )


def test_every_small_count_is_hidden_and_none_can_be_worked_out(
    report: Report, view: Shown
) -> None:
    for key, value in report.counts.items():
        if 1 <= value <= 4:
            assert view.marks.get(key) in (PRIMARY, COMPLEMENTARY), key
        if view.marks.get(key) == PRIMARY:
            assert 1 <= value <= 4, key
    assert recoverable(report.counts, report.relations, view.marks) == []


def test_the_exact_search_finds_no_hidden_count_either(report: Report, view: Shown) -> None:
    assert unrecoverable(report.counts, report.relations, view.marks) == []


def test_the_json_shows_what_suppression_leaves(report: Report, view: Shown) -> None:
    doc = json.loads(to_json(view))
    shown_cells = cells(doc)
    law = {c: shown_cells[("law_enforcement", "all", c)] for c in ("late", "overdue", "total")}
    assert law["late"] == {"value": None, "display": "<5", "share": None}
    assert law["overdue"] == {"value": None, "display": "<5", "share": None}
    assert law["total"] == {"value": 10, "display": "10", "share": None}
    assert shown_cells[("runs_by_sex", "female", "count")]["value"] == 5
    assert shown_cells[("overdue_now", "total", "all")]["value"] == 7
    # One count, one mark wherever it is shown: the law-enforcement table's total is the
    # episodes opened.
    for table in report.tables:
        for (row, column), key in table.cells.items():
            cell = shown_cells[(table.id, row, column)]
            assert cell["display"] == view.display(key)
            assert cell["value"] == (None if key in view.marks else report.counts[key])
    times = {r["id"]: r["cells"] for r in doc["statistics"][0]["rows"]}
    assert times["all"]["law_enforcement"] == {
        "median_hours": 12.0,
        "median_display": "12 h",
        "p90_hours": None,
        "p90_display": "n<10",
    }
    assert times["all"]["duration"]["median_display"] == "1 d 6 h"
    assert times["OH/Franklin"]["duration"]["median_display"] == "n<5"
    assert doc["period"] == {
        "from": "2026-03-01",
        "to": "2026-03-31",
        "time_zone": "America/New_York",
        "start": "2026-03-01T00:00:00-05:00",
        "end": "2026-04-01T00:00:00-04:00",
    }
    assert doc["as_of"] == "2026-04-01T08:00:00-04:00"


def test_shares_are_shown_only_with_their_count_and_total(view: Shown) -> None:
    doc = json.loads(to_json(view))
    for table in doc["tables"]:
        total_column = next((t.share_of for t in view.report.tables if t.id == table["id"]), None)
        for row in table["rows"]:
            for column, cell in row["cells"].items():
                total = row["cells"].get(total_column or "", {}).get("value")
                if cell["share"] is not None:
                    assert cell["value"] is not None and total
                    assert cell["share"] == pytest.approx(cell["value"] / total, abs=1e-6)
                elif total_column and column != total_column and cell["value"] is not None:
                    assert not total  # hidden or zero


def test_the_csv_has_one_line_per_cell(view: Shown) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(view))))
    assert list(rows[0]) == ["table", "row", "column", "value", "share_percent"]
    count_lines = [r for r in rows if r["table"] not in ("report", "times")]
    assert len(count_lines) == sum(len(t.cells) for t in view.report.tables)
    for r in count_lines:
        assert r["value"] in ("<5", "*") or not 1 <= int(r["value"]) <= 4
    by = {(r["table"], r["row"], r["column"]): r for r in rows}
    assert by[("report", "period_time_zone", "")]["value"] == "America/New_York"
    assert by[("times", "all", "ncmec_median_hours")]["value"] == "20.0"
    assert by[("episodes", "all", "opened")]["value"] == "10"


def test_the_html_is_one_printable_file_with_its_charts(view: Shown) -> None:
    page = to_html(view, "Kentucky and Ohio test agency")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 5
    assert "@media print" in page
    lowered = page.lower()
    for outside in ("<script", "<link", "src=", "href=", "@import", "url(http", "<img"):
        assert outside not in lowered, outside
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "Reported to law enforcement" in page and "&lt;5" in page


def test_no_output_holds_anything_about_a_child(view: Shown) -> None:
    secrets = identifying(caseload().events)
    assert {"C7", "A9", "Name of C7", "2008-04-01"} <= secrets
    for text in (to_json(view), to_csv(view), to_html(view)):
        assert leaks(text, secrets) == []


# --- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in caseload().events))
    return path


def report_args(events: Path, *more: str) -> list[str]:
    return [
        "report",
        "--agency",
        AGENCY,
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--events",
        str(events),
        "--policy",
        str(ROOT / "rules"),
        *more,
    ]


def test_the_command_writes_what_the_computation_renders(
    events_file: Path, view: Shown, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "march.json"
    argv = report_args(
        events_file,
        "--as-of",
        "2026-04-01T12:00:00Z",
        "--time-zone",
        "America/New_York",
        "--format",
        "json",
        "--out",
        str(out),
    )
    assert main(argv) == 0
    assert out.read_text() == to_json(view)
    assert main([*argv[:-2], "--format", "csv"]) == 0
    assert capsys.readouterr().out == to_csv(view)


def test_a_date_as_of_is_the_end_of_that_day_on_the_agencys_clock(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = report_args(
        events_file, "--as-of", "2026-04-01", "--time-zone", "America/New_York", "--format", "json"
    )
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["as_of"] == "2026-04-02T00:00:00-04:00"


def test_without_an_agency_file_events_in_two_zones_need_a_time_zone(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(report_args(events_file, "--as-of", "2026-04-01", "--format", "json")) == 2
    assert "give --time-zone" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (("--to", "2026-02-01"), "--to: the period ends before it starts"),
        (("--as-of", "yesterday"), "--as-of: 'yesterday' is not a date or an ISO 8601 time"),
        (("--as-of", "2026-02-01"), "--as-of: the report date is before the period starts"),
        (("--time-zone", "Mars/Base"), "--time-zone: 'Mars/Base' is not an IANA time zone"),
    ],
)
def test_bad_arguments_are_named(
    events_file: Path, more: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = report_args(events_file, "--time-zone", "America/New_York", *more)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"carealert report: {message}\n"


def test_an_unreadable_event_writes_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = caseload().events
    broken = tmp_path / "broken.jsonl"
    lines = [json.dumps(e) for e in events]
    lines[3] = lines[3].replace('"occurred_at"', '"occured_at"')
    broken.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.html"
    argv = report_args(broken, "--time-zone", "America/New_York", "--out", str(out))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{broken}:4: " in err and "no report written" in err
    assert "C1" not in err.replace(str(broken), "")
    assert not out.exists()
