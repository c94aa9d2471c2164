"""The policy as data: rules/escalations.yaml, rules/risk.yaml, rules/jurisdictions/*.yaml.

`load_policy(dir)` reads every file strictly (unknown keys are errors), then runs a
cross-reference pass (duplicate rule ids, unknown event types, recipient classes, fact fields,
overlay targets). Every problem is reported as `PolicyProblem(file, path, reason)`; the loader
collects them all and raises `PolicyInvalid` with the list.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
)

from services.common import yamlio
from services.common.config import ConfigInvalid, ConfigProblem
from services.common.durations import parse_duration
from services.common.escalations import (
    NEVER_SILENCEABLE_PREFIXES,
    RECIPIENT_CLASSES,
    SEVERITIES,
    Severity,
)
from services.common.events import (
    EVENT_TYPES,
    USPS_STATES,
    ImmediateRisk,
    RiskIndicator,
    require_printable,
)
from services.common.models import Strict
from services.rules.clocks import DEFAULT_GRACE, Due, parse_due

# --- facts: what a condition may test ------------------------------------------------------

RISK_FLAGS: tuple[tuple[str, str], ...] = tuple(
    (f"immediate_risk_{risk}", risk) for risk in get_args(ImmediateRisk)
)
"""The fact fields flagging each immediate risk, with the risk they flag."""
INDICATOR_FLAGS: tuple[tuple[str, str], ...] = tuple(
    (f"risk_indicator_{indicator}", indicator) for indicator in get_args(RiskIndicator)
)
"""The fact fields flagging each risk indicator, with the indicator they flag."""
#: Every field of the enriched fact a rule condition may name, with its type. Race is not a
#: field and can not become one: conditions on unknown fields are rejected at load time.
FACT_FIELDS: Mapping[str, type] = {
    "event_type": str,
    "state": str,
    "county": str,
    "age": int,
    "sex": str,
    "risk_tier": str,
    "previous_tier": str,
    "tier_rose": bool,
    "tier_changed": bool,
    "setting": str,
    "congregate_care": bool,
    "placements_last_12_months": int,
    "runs_last_12_months": int,
    "risk_indicator_count": int,
    "episode_open": bool,
    "circumstances": str,
    "immediate_risk_count": int,
    "ncic_entry_confirmed": bool,
    "ncic_declined": bool,
    "result": str,
    "tool": str,
    "party": str,
    "level": str,
    "reason": str,
    "location_class": str,
    "trafficking_status": str,
    "trafficking_type": str,
    # One flag per immediate risk of the episode (missing.opened `immediate_risks`) and per
    # risk indicator of the child: true when it is present.
    **{name: bool for name, _ in RISK_FLAGS},
    **{name: bool for name, _ in INDICATOR_FLAGS},
}

#: Duties that exist because of a screening or trafficking finding (docs/domain.md, "Who gets
#: what"): their existence tells a reader the finding, so they never reach these classes, not
#: even as action text, whatever the policy says.
FINDING_EVENTS: frozenset[str] = frozenset(
    {
        "screening.completed",
        "trafficking.identified",
        "trafficking.law_enforcement_reported",
        # What a child disclosed at the return interview is a finding of the same kind.
        "return.crime_disclosed",
        "return.crime_reported",
    }
)
NEVER_TOLD_OF_FINDINGS: frozenset[str] = frozenset(
    {"court", "guardian_ad_litem", "attorney", "parent", "placement_provider", "shelter_network"}
)


FINDING_DUTY = "a duty about a screening or trafficking finding"


#: Fact fields that carry a finding: a condition on one tells a reader the finding.
FINDING_FIELDS: frozenset[str] = frozenset(
    {"result", "tool", "trafficking_status", "trafficking_type"}
)


def condition_fields(cond: Any) -> set[str]:
    """The fact fields a condition names (through `all` and `any`)."""
    if not isinstance(cond, dict):
        return set()
    out: set[str] = set()
    for key, value in cond.items():
        if key in ("all", "any") and isinstance(value, list):
            for sub in value:
                out |= condition_fields(sub)
        else:
            out.add(key)
    return out


def about_a_finding(spec: RuleSpec) -> bool:
    """Whether a rule's escalations tell of a screening, trafficking or disclosed-crime
    finding: triggered by a finding event or by any event (`"*"`: it may be one), or with a
    condition (trigger, severity, deadline or discharge) on a field that carries a finding."""
    if FINDING_EVENTS & set(spec.on) or "*" in spec.on:
        return True
    conditions = [
        spec.when,
        *(sw.when for sw in spec.severity_when),
        *(dw.when for dw in spec.due_when),
        *(res.when for res in spec.resolved_by),
    ]
    return any(FINDING_FIELDS & condition_fields(c) for c in conditions if c)


# Action and basis text reaches messages as a single line (escalations carry it): printable,
# and short enough that "OVERDUE: " can be put in front of it.
PolicyText = Annotated[
    str, StringConstraints(min_length=1, max_length=4000), AfterValidator(require_printable)
]

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")]
# --- file models (strict) --------------------------------------------------------------------


Condition = dict[str, Any]


class SeverityWhen(Strict):
    when: Condition
    severity: Severity


class Resolution(Strict):
    event: str
    when: Condition | None = None
    # "start": only an event that occurred at or after the duty's start (the instant its
    # deadline counts from) discharges it; "any": an event at any time does.
    since: Literal["any", "start"] = "any"


class DueWhen(Strict):
    when: Condition
    due: str


class Overdue(Strict):
    severity: Severity | None = None
    recipients: tuple[str, ...] | None = None
    action: PolicyText | None = None


class FireAfter(Strict):
    duration: str | None = None
    local_time: str | None = None
    start: Literal["occurred_at", "last_seen_at"] = "occurred_at"


class RuleSpec(Strict):
    id: RuleId
    on: tuple[str, ...] = Field(min_length=1)
    when: Condition | None = None
    scope: Literal["episode", "child"] = "episode"
    severity: Severity
    severity_when: tuple[SeverityWhen, ...] = ()
    action: PolicyText
    basis: PolicyText
    recipients: tuple[str, ...] = Field(min_length=1)
    due: str
    due_when: tuple[DueWhen, ...] = ()
    fire_after: FireAfter | None = None
    cancel_on: tuple[str, ...] = ()
    resolved_by: tuple[Resolution, ...] = ()
    overdue: Overdue | None = Overdue()
    # A silence may mute its notifications (services.notify.silences). Never a duty: a rule
    # with a deadline, a federal rule, the missing-child broadcast or a state's rule.
    silenceable: bool = False


class RulesFile(Strict):
    version: Literal[1]
    # How long `due: immediately` gives before the duty is overdue.
    immediately_grace: str = "1h"
    rules: tuple[RuleSpec, ...]


class Override(Strict):
    due: str | None = None
    due_when: tuple[DueWhen, ...] | None = None
    severity: Severity | None = None
    recipients: tuple[str, ...] | None = None
    overdue: Overdue | None = None


class OverlayFile(Strict):
    state: str
    name: str
    basis: str
    immediately_grace: str | None = None
    overrides: dict[str, Override] = {}
    rules: tuple[RuleSpec, ...] = ()


class RiskFile(Strict):
    tiers: dict[Literal["elevated", "high"], int]
    runs_last_12_months: dict[int, int]
    congregate_care: int
    placement_instability: dict[Literal["min_placements_12_months", "points"], int]
    age_12_to_17: int
    female: int
    risk_indicators: dict[RiskIndicator, int]


# --- compiled policy -------------------------------------------------------------------------

LOCAL_TIME_RE = re.compile(r"^(?P<h>[01][0-9]|2[0-3]):(?P<m>[0-5][0-9])$")


def parse_local_time(text: str) -> time:
    """`HH:MM` on a 24-hour clock; ValueError naming the form."""
    m = LOCAL_TIME_RE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a time of day: use HH:MM, 00:00 to 23:59")
    return time(int(m["h"]), int(m["m"]))


def next_local_time(start: datetime, zone: ZoneInfo, clock: time) -> datetime:
    """The first instant strictly after `start` at which the local clock in `zone` reads
    `clock`, in UTC. As in services.rules.clocks: a time the spring-forward skips counts with the
    offset before the change (02:30 becomes 03:30 daylight time), a time the fall-back repeats
    counts once, as the first of the two."""
    day = start.astimezone(zone).date()
    while True:
        candidate = datetime.combine(day, clock).replace(tzinfo=zone, fold=0).astimezone(UTC)
        if candidate > start:
            return candidate
        day += timedelta(days=1)


@dataclass(frozen=True)
class FireAt:
    """When a `fire_after` rule fires, counted from its start instant in the jurisdiction's
    zone: an elapsed time (`24h`), calendar days (`7d`, days only: the same local wall-clock
    time that many days later, as for a `due`), or the next `local_time` (`06:00`)."""

    elapsed: timedelta | None = None
    days: int = 0
    local_time: time | None = None

    def at(self, start: datetime, zone: ZoneInfo) -> datetime:
        if self.local_time is not None:
            return next_local_time(start, zone, self.local_time)
        if self.days:
            found = Due("calendar_days", days=self.days).at(start, zone, "", DEFAULT_GRACE)
            assert found is not None  # calendar days always give a time
            return found
        assert self.elapsed is not None
        return start + self.elapsed

    @property
    def nominal(self) -> timedelta | None:
        """The nominal delay (None for a local time of day): what `Rule.fire_after` shows."""
        if self.local_time is not None:
            return None
        return timedelta(days=self.days) if self.days else self.elapsed


def parse_fire_after(spec: FireAfter) -> FireAt:
    """A checked `fire_after` (ValueError naming the problem; `_check_rule` reports it)."""
    if (spec.duration is None) == (spec.local_time is None):
        raise ValueError("give either duration or local_time")
    if spec.local_time is not None:
        return FireAt(local_time=parse_local_time(spec.local_time))
    assert spec.duration is not None
    due = parse_due(spec.duration)
    if due.kind == "calendar_days":
        return FireAt(days=due.days)
    if due.kind != "elapsed" or due.amount <= timedelta(0):
        raise ValueError(
            f"{spec.duration!r} is not a delay: use an elapsed time like 24h or calendar days "
            "like 7d"
        )
    return FireAt(elapsed=due.amount)


@dataclass(frozen=True)
class Rule:
    """One rule after overlays are applied, ready to evaluate."""

    id: str
    on: frozenset[str]
    when: Condition | None
    scope: Literal["episode", "child"]
    severity: Severity
    severity_when: tuple[SeverityWhen, ...]
    action: str
    basis: str
    recipients: tuple[str, ...]
    due: Due
    grace: timedelta  # what `due: immediately` gives
    fire_after: timedelta | None  # the nominal delay of `fire`; None for a local time of day
    fire_start: str
    cancel_on: frozenset[str]
    resolved_by: tuple[Resolution, ...]
    overdue: Overdue | None
    # `due_when`: (condition, deadline) pairs; the first whose condition holds replaces `due`.
    due_when: tuple[tuple[Condition, Due], ...] = ()
    fire: FireAt | None = None  # when a `fire_after` rule fires
    silenceable: bool = False

    def triggered_by(self, event_type: str) -> bool:
        return event_type in self.on or "*" in self.on


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[Rule, ...]
    overlays: Mapping[str, tuple[Rule, ...]]
    risk: RiskFile
    files: tuple[str, ...] = field(default=())

    def rules_for(self, state: str) -> tuple[Rule, ...]:
        """The rules in force in a state: the federal rules with the overlay applied."""
        return self.overlays.get(state, self.rules)


PolicyProblem = ConfigProblem


class PolicyInvalid(ConfigInvalid):
    """The policy files can not be used; `problems` lists every one."""


def _read_yaml(path: Path, problems: list[PolicyProblem]) -> Any:
    try:
        return yamlio.load(path.read_text())
    except OSError as exc:
        problems.append(PolicyProblem(path.name, "(file)", f"cannot read: {exc.strerror}"))
    except yaml.YAMLError as exc:
        problems.append(PolicyProblem(path.name, "(file)", f"not valid YAML: {exc}"))
    return _UNREADABLE


M = TypeVar("M", bound=BaseModel)


_UNREADABLE = object()


def _model(cls: type[M], raw: Any, file: str, problems: list[PolicyProblem]) -> M | None:
    if raw is _UNREADABLE:
        return None  # already reported by _read_yaml
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = ".".join(str(p) for p in err["loc"]) or "(root)"
            value = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            problems.append(PolicyProblem(file, path, f"{err['msg']}{value}"))
        return None


# --- conditions ------------------------------------------------------------------------------

_OPS = {"eq", "ne", "lt", "lte", "gt", "gte", "in"}


def check_condition(cond: Any, path: str) -> list[str]:
    """Problems with a condition, as 'path: reason' strings (empty when it is valid)."""
    out: list[str] = []
    if not isinstance(cond, dict) or not cond:
        return [f"{path}: a condition must be a non-empty mapping"]
    for key, value in cond.items():
        here = f"{path}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                out.append(f"{here}: must be a non-empty list of conditions")
                continue
            for i, sub in enumerate(value):
                out.extend(check_condition(sub, f"{here}.{i}"))
            continue
        if key not in FACT_FIELDS:
            out.append(f"{here}: unknown fact field {key!r} (known: {', '.join(FACT_FIELDS)})")
            continue
        kind = FACT_FIELDS[key]
        tests = value if isinstance(value, dict) else {"eq": value}
        for op, operand in tests.items():
            if op not in _OPS:
                out.append(f"{here}.{op}: unknown operator (use {', '.join(sorted(_OPS))})")
                continue
            operands = operand if op == "in" else [operand]
            if op == "in" and (not isinstance(operand, list) or not operand):
                out.append(f"{here}.in: must be a non-empty list")
                continue
            for v in operands:
                ok = isinstance(v, kind) and (kind is bool or not isinstance(v, bool))
                if not ok:
                    out.append(f"{here}.{op}: {v!r} is not a {kind.__name__}")
            if op in ("lt", "lte", "gt", "gte") and kind is not int:
                out.append(f"{here}.{op}: ordering needs a number field")
    return out


def check_due_when(entries: tuple[DueWhen, ...], path: str) -> list[str]:
    """Problems with a `due_when` list, as 'path: reason' strings."""
    out: list[str] = []
    for i, entry in enumerate(entries):
        out += check_condition(entry.when, f"{path}.{i}.when")
        try:
            parse_due(entry.due)
        except ValueError as exc:
            out.append(f"{path}.{i}.due: {exc}")
    return out


# --- loading ---------------------------------------------------------------------------------


def _check_rule(
    spec: RuleSpec, file: str, path: str, problems: list[PolicyProblem], state_rule: bool = False
) -> None:
    def bad(where: str, reason: str) -> None:
        problems.append(PolicyProblem(file, f"{path}.{where}", reason))

    if spec.silenceable:
        why = (
            "a state's rule is a state duty"
            if state_rule
            else "a federal duty or broadcast"
            if spec.id.startswith(NEVER_SILENCEABLE_PREFIXES)
            else "a rule with a deadline is a duty"
            if spec.due != "none" or spec.due_when
            else None
        )
        if why is not None:
            bad("silenceable", f"{why}: no silence may hide it")

    for i, et in enumerate(spec.on):
        if et != "*" and et not in EVENT_TYPES:
            bad(f"on.{i}", f"unknown event type {et!r}")
    for i, et in enumerate(spec.cancel_on):
        if et not in EVENT_TYPES:
            bad(f"cancel_on.{i}", f"unknown event type {et!r}")
    for i, res in enumerate(spec.resolved_by):
        if res.event != "*" and res.event not in EVENT_TYPES:
            bad(f"resolved_by.{i}.event", f"unknown event type {res.event!r}")
        if res.when is not None:
            for p in check_condition(res.when, f"resolved_by.{i}.when"):
                bad(*p.split(": ", 1))
    for i, rc in enumerate(spec.recipients):
        if rc not in RECIPIENT_CLASSES:
            bad(f"recipients.{i}", f"unknown recipient class {rc!r}")
    if about_a_finding(spec):
        for where, classes in (
            ("recipients", spec.recipients),
            ("overdue.recipients", spec.overdue.recipients if spec.overdue else None),
        ):
            for i, rc in enumerate(classes or ()):
                if rc in NEVER_TOLD_OF_FINDINGS:
                    bad(f"{where}.{i}", f"{FINDING_DUTY} must never reach {rc}")
    if spec.overdue and spec.overdue.recipients:
        for i, rc in enumerate(spec.overdue.recipients):
            if rc not in RECIPIENT_CLASSES:
                bad(f"overdue.recipients.{i}", f"unknown recipient class {rc!r}")
    if spec.when is not None:
        for p in check_condition(spec.when, "when"):
            bad(*p.split(": ", 1))
    for i, sw in enumerate(spec.severity_when):
        for p in check_condition(sw.when, f"severity_when.{i}.when"):
            bad(*p.split(": ", 1))
    try:
        parse_due(spec.due)
    except ValueError as exc:
        bad("due", str(exc))
    for problem in check_due_when(spec.due_when, "due_when"):
        bad(*problem.split(": ", 1))
    if spec.due_when and spec.fire_after:
        bad("due_when", "a rule with fire_after fires on the clock, with no event to test: use due")
    if spec.fire_after:
        fa = spec.fire_after
        where = "fire_after.local_time" if fa.local_time is not None else "fire_after.duration"
        if (fa.duration is None) == (fa.local_time is None):
            where = "fire_after"
        try:
            parse_fire_after(fa)
        except ValueError as exc:
            bad(where, str(exc))
    for i, res in enumerate(spec.resolved_by):
        if res.since == "start" and res.event in spec.cancel_on:
            j = spec.cancel_on.index(res.event)
            bad(
                f"cancel_on.{j}",
                f"{res.event!r} discharges this rule only since its start (resolved_by.{i}); "
                "cancel_on would cancel it whenever it occurs",
            )
    if spec.id.endswith(".overdue"):
        bad("id", "ids ending in .overdue are made by the engine")


def _minimised(spec: RuleSpec, classes: tuple[str, ...]) -> tuple[str, ...]:
    """The recipient classes a rule's escalations may reach, whatever the policy file says."""
    if not about_a_finding(spec):
        return classes
    return tuple(c for c in classes if c not in NEVER_TOLD_OF_FINDINGS)


def _compile(spec: RuleSpec, grace: timedelta, override: Override | None = None) -> Rule:
    due = override.due if override and override.due else spec.due
    due_when = override.due_when if override and override.due_when is not None else spec.due_when
    fire = parse_fire_after(spec.fire_after) if spec.fire_after else None
    overdue = override.overdue if override and override.overdue else spec.overdue
    if overdue is not None and overdue.recipients:
        overdue = overdue.model_copy(update={"recipients": _minimised(spec, overdue.recipients)})
    return Rule(
        id=spec.id,
        on=frozenset(spec.on),
        when=spec.when,
        scope=spec.scope,
        severity=(override.severity if override and override.severity else spec.severity),
        severity_when=spec.severity_when,
        action=spec.action,
        basis=spec.basis,
        recipients=_minimised(
            spec, override.recipients if override and override.recipients else spec.recipients
        ),
        due=parse_due(due),
        grace=grace,
        fire_after=fire.nominal if fire else None,
        fire_start=spec.fire_after.start if spec.fire_after else "occurred_at",
        cancel_on=frozenset(spec.cancel_on),
        resolved_by=spec.resolved_by,
        overdue=overdue,
        due_when=tuple((entry.when, parse_due(entry.due)) for entry in due_when),
        fire=fire,
        # A state's override that gives the rule a deadline makes it a duty: never silenced.
        silenceable=spec.silenceable and parse_due(due).kind == "none" and not due_when,
    )


def later_than(state: Due, federal: Due, grace: timedelta) -> bool:
    """Whether a state's deadline can fall after the federal one for some start."""
    if federal.kind == "none":
        return False
    if state.kind == federal.kind:
        return state.amount > federal.amount or state.days > federal.days
    state_bounds, federal_bounds = state.bounds(grace), federal.bounds(grace)
    if state_bounds is None or federal_bounds is None:
        return state_bounds is None
    return state_bounds[1] > federal_bounds[0]


def federal_floor(
    file: str, rule_id: str, base: RuleSpec, ov: Override, grace: timedelta = DEFAULT_GRACE
) -> list[PolicyProblem]:
    """A state may make a federal duty stricter (sooner, more recipients), never weaker."""
    if not rule_id.startswith("federal."):
        return []
    problems: list[PolicyProblem] = []
    # Every deadline the state can give must be no later than every one the federal rule can
    # give (a conservative test when either has conditional deadlines).
    state_dues = [(f"overrides.{rule_id}.due", ov.due)] if ov.due else []
    state_dues += [
        (f"overrides.{rule_id}.due_when.{i}.due", entry.due)
        for i, entry in enumerate(ov.due_when or ())
    ]
    federal_dues = [base.due, *(entry.due for entry in base.due_when)]
    for path, text in state_dues:
        try:
            state = parse_due(text)
            federal = [(f, parse_due(f)) for f in federal_dues]
        except ValueError:
            continue  # reported by the caller
        for federal_text, federal_due in federal:
            if later_than(state, federal_due, grace):
                problems.append(
                    PolicyProblem(
                        file,
                        path,
                        f"{text!r} can be later than the federal deadline {federal_text!r}",
                    )
                )
                break
    if ov.severity is not None and SEVERITIES.index(ov.severity) < SEVERITIES.index(base.severity):
        problems.append(
            PolicyProblem(
                file,
                f"overrides.{rule_id}.severity",
                f"{ov.severity!r} is lower than the federal duty's {base.severity!r}",
            )
        )
    if ov.overdue is not None and ov.overdue.recipients is not None and base.overdue is not None:
        for rc in base.overdue.recipients or ():
            if rc not in ov.overdue.recipients:
                problems.append(
                    PolicyProblem(
                        file,
                        f"overrides.{rule_id}.overdue.recipients",
                        f"drops {rc!r}, a recipient of the federal duty when overdue",
                    )
                )
    if ov.recipients is not None:
        for rc in base.recipients:
            if rc not in ov.recipients:
                problems.append(
                    PolicyProblem(
                        file,
                        f"overrides.{rule_id}.recipients",
                        f"drops {rc!r}, a recipient of the federal duty",
                    )
                )
    return problems


def _grace(text: str | None, file: str, problems: list[PolicyProblem]) -> timedelta | None:
    """`immediately_grace`: an elapsed time from 1 minute to 24 hours."""
    if text is None:
        return None
    try:
        grace = parse_duration(text)
    except ValueError as exc:
        problems.append(PolicyProblem(file, "immediately_grace", str(exc)))
        return None
    if grace is None or not timedelta(minutes=1) <= grace <= timedelta(hours=24):
        problems.append(PolicyProblem(file, "immediately_grace", "must be from 1m to 24h"))
        return None
    return grace


def load_policy(directory: Path) -> Policy:
    """Load and cross-check the policy in `directory`. Raises PolicyInvalid with every problem."""
    problems: list[PolicyProblem] = []
    rules_path = directory / "escalations.yaml"
    risk_path = directory / "risk.yaml"
    overlay_paths = sorted((directory / "jurisdictions").glob("*.yaml"))
    files = [rules_path, risk_path, *overlay_paths]

    rules_file = _model(RulesFile, _read_yaml(rules_path, problems), rules_path.name, problems)
    risk = _model(RiskFile, _read_yaml(risk_path, problems), risk_path.name, problems)

    grace = (
        _grace(rules_file.immediately_grace if rules_file else None, rules_path.name, problems)
        or DEFAULT_GRACE
    )
    base_specs: dict[str, RuleSpec] = {}
    if rules_file:
        for i, spec in enumerate(rules_file.rules):
            if spec.id in base_specs:
                problems.append(
                    PolicyProblem(
                        rules_path.name, f"rules.{i}.id", f"duplicate rule id {spec.id!r}"
                    )
                )
            base_specs[spec.id] = spec
            _check_rule(spec, rules_path.name, f"rules.{i}", problems)

    overlays: dict[str, tuple[Rule, ...]] = {}
    for path in overlay_paths:
        name = f"jurisdictions/{path.name}"
        overlay = _model(OverlayFile, _read_yaml(path, problems), name, problems)
        if overlay is None:
            continue
        overlay_grace = _grace(overlay.immediately_grace, name, problems)
        if overlay.state not in USPS_STATES:
            problems.append(PolicyProblem(name, "state", f"{overlay.state!r} is not a USPS code"))
        elif path.stem != overlay.state:
            problems.append(
                PolicyProblem(name, "state", f"{overlay.state!r} does not match the file name")
            )
        if overlay.state in overlays:
            problems.append(PolicyProblem(name, "state", f"second overlay for {overlay.state}"))
        for rule_id, ov in overlay.overrides.items():
            if rule_id not in base_specs:
                problems.append(
                    PolicyProblem(name, f"overrides.{rule_id}", "no such rule in escalations.yaml")
                )
            if ov.due:
                try:
                    parse_due(ov.due)
                except ValueError as exc:
                    problems.append(PolicyProblem(name, f"overrides.{rule_id}.due", str(exc)))
            for problem in check_due_when(ov.due_when or (), f"overrides.{rule_id}.due_when"):
                problems.append(PolicyProblem(name, *problem.split(": ", 1)))
            base = base_specs.get(rule_id)
            if base is not None and base.fire_after and ov.due_when:
                problems.append(
                    PolicyProblem(
                        name,
                        f"overrides.{rule_id}.due_when",
                        "a rule with fire_after fires on the clock, with no event to test: use due",
                    )
                )
            if base is not None:
                problems += federal_floor(name, rule_id, base, ov, overlay_grace or grace)
            overdue_classes = (ov.overdue.recipients or ()) if ov.overdue else ()
            for i, rc in enumerate(overdue_classes):
                if rc not in RECIPIENT_CLASSES or (
                    base is not None and about_a_finding(base) and rc in NEVER_TOLD_OF_FINDINGS
                ):
                    reason = (
                        f"unknown recipient class {rc!r}"
                        if rc not in RECIPIENT_CLASSES
                        else f"{FINDING_DUTY} must never reach {rc}"
                    )
                    problems.append(
                        PolicyProblem(name, f"overrides.{rule_id}.overdue.recipients.{i}", reason)
                    )
            for i, rc in enumerate(ov.recipients or ()):
                if base is not None and about_a_finding(base) and rc in NEVER_TOLD_OF_FINDINGS:
                    problems.append(
                        PolicyProblem(
                            name,
                            f"overrides.{rule_id}.recipients.{i}",
                            f"{FINDING_DUTY} must never reach {rc}",
                        )
                    )
                if rc not in RECIPIENT_CLASSES:
                    problems.append(
                        PolicyProblem(
                            name,
                            f"overrides.{rule_id}.recipients.{i}",
                            f"unknown recipient class {rc!r}",
                        )
                    )
        for i, spec in enumerate(overlay.rules):
            _check_rule(spec, name, f"rules.{i}", problems, state_rule=True)
            if spec.id in base_specs:
                problems.append(
                    PolicyProblem(
                        name,
                        f"rules.{i}.id",
                        f"duplicate rule id {spec.id!r} (use overrides to change a federal rule)",
                    )
                )
        if not problems:
            state_grace = overlay_grace or grace
            compiled = [
                _compile(s, state_grace, overlay.overrides.get(s.id)) for s in base_specs.values()
            ]
            compiled += [_compile(s, state_grace) for s in overlay.rules]
            overlays[overlay.state] = tuple(compiled)

    if risk is not None:
        if set(risk.tiers) != {"elevated", "high"} or risk.tiers["elevated"] >= risk.tiers["high"]:
            problems.append(PolicyProblem(risk_path.name, "tiers", "needs elevated < high"))
        if set(risk.placement_instability) != {"min_placements_12_months", "points"}:
            problems.append(
                PolicyProblem(
                    risk_path.name,
                    "placement_instability",
                    "needs min_placements_12_months and points",
                )
            )

    if problems or rules_file is None or risk is None:
        raise PolicyInvalid(problems)

    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes())
    return Policy(
        version=digest.hexdigest(),
        rules=tuple(_compile(s, grace) for s in base_specs.values()),
        overlays=overlays,
        risk=risk,
        files=tuple(p.relative_to(directory).as_posix() for p in files),
    )


def severity_above(severity: Severity) -> Severity:
    i = SEVERITIES.index(severity)
    return SEVERITIES[min(i + 1, len(SEVERITIES) - 1)]
