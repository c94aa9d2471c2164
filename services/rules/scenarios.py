"""Scenario tests of the policy (`rules/tests/*.yaml`), run by `carealert policy test`.

A scenario is a timeline of events at times relative to `start`, with clock advances, and the
escalations expected by the end (or that must not appear)::

    name: MO missing child reported late
    start: 2026-11-24T02:00:00Z
    child: {agency_id: demo-agency, child_id: C-1, state: MO}
    steps:
      - {at: 0m, type: child.registered, payload: {date_of_birth: 2011-05-01, sex: female}}
      - {at: 10m, type: missing.opened,
         payload: {episode_id: E-1, last_seen_at: -20m, circumstances: runaway}}
      - {advance: 3h}
    expect:
      - {rule_id: federal.report-ncmec, status: firing, due: 2h10m,
         recipients: [caseworker, supervisor]}
      - {rule_id: federal.report-ncmec.overdue, status: firing, severity: critical}
    absent:
      - {rule_id: federal.report-ncmec, status: resolved}

Times (`at`, `advance`, `due`, `emitted_at`, and payload values written as offsets such as
`-20m` or `+1h` for fields ending in `_at`) are offsets from `start`. Every `expect` item must
match at least one emitted escalation on the fields it gives; no `absent` item may match any.
With `exact: true`, every emitted (rule_id, status) pair must be expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, ValidationError

from services.common import yamlio
from services.common.durations import parse_duration
from services.common.escalations import Escalation
from services.common.events import EventInvalid, parse_event_obj
from services.common.models import Strict
from services.rules.core import ConflictingDuplicate, Engine
from services.rules.offline import VirtualRun

SECOND = timedelta(seconds=1)
OFFSET_RE = re.compile(r"^[+-]?(\d+d)?(\d+h)?(\d+m)?$")


class ChildDefaults(Strict):
    agency_id: str = "demo-agency"
    child_id: str = "C-1"
    state: str = "MO"
    county: str | None = None


class Step(Strict):
    at: str | None = None
    type: str | None = None
    payload: dict[str, Any] = {}
    event_id: str | None = None
    child_id: str | None = None
    state: str | None = None
    advance: str | None = None


class Expectation(Strict):
    rule_id: str
    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = None
    due: str | None = None
    recipients: list[str] | None = None
    child_id: str | None = None
    episode_id: str | None = None
    emitted_at: str | None = None
    count: int | None = None


class Scenario(Strict):
    name: str
    start: AwareDatetime
    child: ChildDefaults = ChildDefaults()
    steps: list[Step]
    expect: list[Expectation] = []
    absent: list[Expectation] = []
    exact: bool = False


def offset(text: str) -> timedelta:
    """'-20m', '+1h', '2d3h' → a timedelta."""
    text = str(text)
    sign = -1 if text.startswith("-") else 1
    duration = parse_duration(text.lstrip("+-"))
    if duration is None:
        raise ValueError(f"{text!r} is not a time offset")
    return sign * duration


def _payload(payload: dict[str, Any], start: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in payload.items():
        if (
            k.endswith("_at")
            and isinstance(v, str)
            and OFFSET_RE.match(v)
            and v not in ("", "+", "-")
        ):
            out[k] = (start + offset(v)).isoformat()
        elif isinstance(v, dict):
            out[k] = _payload(v, start)
        elif isinstance(v, date | datetime):
            out[k] = v.isoformat()
        else:
            out[k] = v
    return out


@dataclass
class Emitted:
    at: datetime
    escalation: Escalation


def _matches(exp: Expectation, em: Emitted, start: datetime) -> bool:
    e = em.escalation
    if e.rule_id != exp.rule_id or e.status != exp.status:
        return False
    if exp.severity is not None and e.severity != exp.severity:
        return False
    if exp.due is not None:
        want = None if exp.due == "none" else start + offset(exp.due)
        if e.due_at != want:
            return False
    if exp.recipients is not None and sorted(e.recipients) != sorted(exp.recipients):
        return False
    if exp.child_id is not None and e.child_id != exp.child_id:
        return False
    if exp.episode_id is not None and e.episode_id != exp.episode_id:
        return False
    # An overdue step is emitted the first moment after its deadline (within the second).
    return (
        exp.emitted_at is None or timedelta(0) <= em.at - (start + offset(exp.emitted_at)) < SECOND
    )


def _describe(em: Emitted, start: datetime) -> str:
    e = em.escalation
    due = "none" if e.due_at is None else _fmt(e.due_at - start)
    return (
        f"{_fmt(em.at - start)} {e.rule_id} {e.status} severity={e.severity} due={due} "
        f"recipients={','.join(e.recipients)} child={e.child_id}"
    )


def _fmt(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "-" if minutes < 0 else ""
    minutes = abs(minutes)
    d, rem = divmod(minutes, 1440)
    h, m = divmod(rem, 60)
    text = (f"{d}d" if d else "") + (f"{h}h" if h else "") + (f"{m}m" if m or not (d or h) else "")
    return sign + text


def run_scenario(engine: Engine, scenario: Scenario) -> tuple[list[Emitted], list[str]]:
    """Run one scenario; return what was emitted and the failures (empty when it passes)."""
    run = VirtualRun(engine)
    emitted: list[Emitted] = []
    failures: list[str] = []
    start = scenario.start
    for i, step in enumerate(scenario.steps):
        if step.advance is not None:
            now = (run.now or start) + offset(step.advance)
            emitted += [Emitted(e.created_at, e) for e in run.advance(now)]
            continue
        if step.type is None or step.at is None:
            failures.append(f"steps.{i}: a step needs either advance, or at and type")
            continue
        at = start + offset(step.at)
        obj = {
            "event_id": step.event_id or f"{scenario.name}#{i}",
            "event_type": step.type,
            "schema_version": 1,
            "agency_id": scenario.child.agency_id,
            "child_id": step.child_id or scenario.child.child_id,
            "occurred_at": at.isoformat(),
            "jurisdiction": {"state": step.state or scenario.child.state}
            | ({"county": scenario.child.county} if scenario.child.county else {}),
            "payload": _payload(step.payload, start),
        }
        try:
            event = parse_event_obj(obj, now=at)  # received when it happens, on the virtual clock
        except EventInvalid as exc:
            failures.append(f"steps.{i}: invalid event: {exc.reason}")
            continue
        try:
            emitted += [Emitted(e.created_at, e) for e in run.apply(event, at)]
        except ConflictingDuplicate:
            failures.append(f"steps.{i}: event_id seen before with different content")
    for exp in scenario.expect:
        hits = [em for em in emitted if _matches(exp, em, start)]
        if not hits or (exp.count is not None and len(hits) != exp.count):
            got = f"{len(hits)} matches" if hits else "no match"
            failures.append(f"expected {exp.model_dump(exclude_none=True)}: {got}")
    for exp in scenario.absent:
        for em in emitted:
            if _matches(exp, em, start):
                failures.append(
                    f"must not emit {exp.model_dump(exclude_none=True)}: got {_describe(em, start)}"
                )
    if scenario.exact:
        wanted = {(x.rule_id, x.status) for x in scenario.expect}
        for em in emitted:
            if (em.escalation.rule_id, em.escalation.status) not in wanted:
                failures.append(f"unexpected (exact: true): {_describe(em, start)}")
    if failures:
        failures.append(
            "emitted:\n      " + "\n      ".join(_describe(em, start) for em in emitted)
        )
    return emitted, failures


@dataclass(frozen=True)
class ScenarioResult:
    file: str
    name: str
    failures: tuple[str, ...]


def load_scenarios(path: Path) -> list[Scenario]:
    """A scenario file holds one scenario or a list under `scenarios:`."""
    raw = yamlio.load(path.read_text())
    if isinstance(raw, dict) and "routing_cases" in raw and "scenarios" not in raw:
        return []  # routing cases only: run by services.notify.routing_cases.run_routing_cases
    items = raw["scenarios"] if isinstance(raw, dict) and "scenarios" in raw else [raw]
    return [Scenario.model_validate(item) for item in items]


def run_directory(engine: Engine, directory: Path) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    for path in sorted((directory / "tests").glob("*.yaml")):
        try:
            scenarios = load_scenarios(path)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            results.append(ScenarioResult(path.name, "(file)", (f"cannot load: {exc}",)))
            continue
        for sc in scenarios:
            try:
                _, failures = run_scenario(engine, sc)
            except ValueError as exc:
                failures = [f"error: {exc}"]
            results.append(ScenarioResult(path.name, sc.name, tuple(failures)))
    return results
