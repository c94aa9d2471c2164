"""`carealert report` on what `carealert simulate` writes (a year of a synthetic caseload): the
shares of each row add up to 100 %, no child id, name or date of birth appears in the json, csv
or html, and no hidden count can be worked out from the others."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.cli import main
from services.localdev.simulate import NAMES
from services.report.measures import Report, compute
from services.report.render import shown
from services.report.suppression import PRIMARY, recoverable
from services.report_cli import facts_from_file, read_events
from tests.unit.test_report_render import cells, identifying, leaks

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.now(UTC).astimezone(ZoneInfo("America/Chicago")).date()
PERIOD = ((TODAY - timedelta(days=182)).isoformat(), TODAY.isoformat())
MO_CASELOAD = ("--children", "80", "--seed", "5", "--agency", "mo-jackson", "--state", "MO")
MIXED_CASELOAD = ("--children", "80", "--seed", "6")  # demo-agency, MO KY TX and OH


def simulate(tmp: Path, name: str, options: tuple[str, ...]) -> Path:
    out = tmp / f"{name}.jsonl"
    assert main(["simulate", "--days", "365", *options, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def mo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim"), "mo", MO_CASELOAD)


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim"), "mixed", MIXED_CASELOAD)


def report_of(path: Path, agency: str, zone: ZoneInfo) -> Report:
    events, problems = read_events(path)
    assert problems == []
    as_of = datetime.now(UTC)
    facts = facts_from_file(events, ROOT / "rules", as_of)
    assert not isinstance(facts, list)
    first, last = (datetime.fromisoformat(d).date() for d in PERIOD)
    return compute(facts, agency, first, last, as_of, zone)


def run_report(path: Path, agency: str, fmt: str, *more: str) -> str:
    out = path.with_suffix(f".{fmt}")
    argv = ["report", "--agency", agency, "--from", PERIOD[0], "--to", PERIOD[1]]
    argv += ["--events", str(path), "--policy", str(ROOT / "rules"), "--format", fmt]
    assert main([*argv, *more, "--out", str(out)]) == 0
    return out.read_text()


def check_shares(doc: dict[str, Any]) -> int:
    """Every row whose cells and total are all shown: its shares add up to 1. Returns how many
    rows were checked."""
    checked = 0
    for table in doc["tables"]:
        ids = [c["id"] for c in table["columns"]]
        for row in table["rows"]:
            parts = [row["cells"][c] for c in ids[:-1]]
            total = row["cells"][ids[-1]]["value"]
            if not total or any(p["value"] is None for p in parts):
                continue
            if all(p["share"] is None for p in parts):
                continue  # a table without shares
            assert sum(p["share"] for p in parts) == pytest.approx(1, abs=1e-5), table["id"]
            checked += 1
    return checked


def test_a_year_of_one_county_agency(mo_file: Path) -> None:
    events = [json.loads(line) for line in mo_file.read_text().splitlines()]
    secrets = identifying(events) | set(NAMES)
    outputs = {fmt: run_report(mo_file, "mo-jackson", fmt) for fmt in ("json", "csv", "html")}
    for fmt, text in outputs.items():
        assert leaks(text, secrets) == [], fmt
        assert "SIM-" not in text, fmt
    doc = json.loads(outputs["json"])
    assert doc["period"]["time_zone"] == "America/Chicago"  # rules/agencies/mo-jackson.yaml
    assert doc["agency_name"] == "Jackson County Children's Division"
    assert check_shares(doc) >= 5
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    shown_cells = cells(doc)
    for r in rows:
        if r["table"] not in ("report", "times"):
            assert shown_cells[(r["table"], r["row"], r["column"])]["display"] == r["value"]
    assert "<svg" in outputs["html"] and "<script" not in outputs["html"]


def test_a_year_of_an_agency_in_four_states(mixed_file: Path) -> None:
    zone = ZoneInfo("America/Chicago")
    report = report_of(mixed_file, "demo-agency", zone)
    assert len({row for (_, _, row) in report.counts}) >= 4  # all and the states' rows
    # Every row's statuses add up to its cohort: shares add up to exactly 100 %.
    for table in report.tables:
        if table.share_of is None:
            continue
        for row, _ in table.rows:
            total = report.counts[table.cells[(row, table.share_of)]]
            parts = [table.cells[(row, c)] for c, _ in table.columns if c != table.share_of]
            if total:
                assert sum(Fraction(report.counts[p], total) for p in parts) == 1
    view = shown(report)
    for key, value in report.counts.items():
        assert (1 <= value <= 4) <= (key in view.marks), key
        assert (view.marks.get(key) == PRIMARY) <= (1 <= value <= 4), key
    assert recoverable(report.counts, report.relations, view.marks) == []
    text = run_report(mixed_file, "demo-agency", "json", "--time-zone", "America/Chicago")
    doc = json.loads(text)
    assert check_shares(doc) >= 1
    events = [json.loads(line) for line in mixed_file.read_text().splitlines()]
    assert leaks(text, identifying(events) | set(NAMES)) == []
    for where, cell in cells(doc).items():
        if cell["value"] is not None:
            assert not 1 <= cell["value"] <= 4, where
