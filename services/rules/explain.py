"""What a policy analyst reviews: for a state, every duty in force with its trigger, deadline
(in words and as a formula), recipients, what happens when it is missed, and its source. Pure:
text from a loaded Policy (`carealert policy explain --state XX`, and the per-state list
`carealert policy check` prints)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.zones import zone_name
from services.rules.policy import Policy, Rule, severity_above

_OPS = {"eq": "is", "ne": "is not", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "in": "is one of"}


CHANGED = "base rule, changed by the state"


@dataclass(frozen=True)
class Duty:
    rule: Rule
    origin: str  # "federal", "federal, changed by the state", "state"


def duties(policy: Policy, state: str) -> list[Duty]:
    """The rules in force in `state`, each with where it comes from."""
    federal = {r.id: r for r in policy.rules}
    out = []
    for rule in policy.rules_for(state):
        if rule.id not in federal:
            origin = "state"
        elif federal[rule.id] != rule:
            origin = CHANGED
        else:
            origin = "base rule"
        out.append(Duty(rule, origin))
    return out


def condition_words(cond: Mapping[str, Any]) -> str:
    """A rule condition as people read it: `age < 13 or immediate_risk_count > 0`."""
    parts = []
    for key, value in cond.items():
        if key in ("all", "any"):
            subs = [condition_words(sub) for sub in value]
            if len(subs) > 1:
                subs = [f"({t})" if " and " in t or " or " in t else t for t in subs]
            parts.append(f" {'and' if key == 'all' else 'or'} ".join(subs))
            continue
        tests = value if isinstance(value, dict) else {"eq": value}
        for op, operand in tests.items():
            shown = ", ".join(map(_value, operand)) if op == "in" else _value(operand)
            parts.append(f"{key} {_OPS[op]} {shown}")
    return " and ".join(parts)


def _value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def trigger_words(rule: Rule) -> str:
    events = "any event" if "*" in rule.on else ", ".join(sorted(rule.on))
    text = f"on {events}"
    if rule.when:
        text += f" when {condition_words(rule.when)}"
    fire = rule.fire
    if fire is not None:
        start = "last seen" if rule.fire_start == "last_seen_at" else "the event"
        if fire.local_time is not None:
            text += f"; fires at the first local {fire.local_time:%H:%M} after {start}"
        elif fire.days:
            days = f"{fire.days} calendar day{'s' if fire.days != 1 else ''}"
            text += f"; fires {days} after {start} (same local time)"
        elif fire.elapsed is not None:
            text += f"; fires {fire.elapsed.total_seconds() / 3600:g} h after {start}"
    if rule.cancel_on:
        text += f" unless {', '.join(sorted(rule.cancel_on))} comes first"
    return text


def discharge_words(rule: Rule) -> str:
    parts = []
    for res in rule.resolved_by:
        event = "any event" if res.event == "*" else res.event
        text = f"{event} when {condition_words(res.when)}" if res.when else event
        parts.append(text + (" made at or after the start" if res.since == "start" else ""))
    return " or ".join(parts) or "nothing (no discharging event)"


def deadline_words(rule: Rule) -> str:
    """The deadline, with any conditional ones first (`due_when`: the first that holds)."""
    plain = rule.due.words(rule.grace)
    if not rule.due_when:
        return plain
    cases = [f"{due.words(rule.grace)} when {condition_words(c)}" for c, due in rule.due_when]
    return "; ".join([*cases, f"otherwise {plain}"])


def overdue_words(rule: Rule) -> str:
    if rule.overdue is None or not rule.due.has_overdue:
        return "no overdue step"
    severity = rule.overdue.severity or severity_above(rule.severity)
    recipients = rule.overdue.recipients
    to = ", ".join(recipients) if recipients else "the recipients plus the next level up"
    return f"{severity} to {to}"


def explain(policy: Policy, state: str, overlay: tuple[str, str] | None = None) -> str:
    """Every duty in force in `state`, for review against the statutes. `overlay`: the state
    overlay's (name, basis), cited where it changes a base rule."""
    zone = zone_name(state)
    title = (
        f"{state}: {overlay[0]} ({overlay[1]})"
        if overlay
        else f"{state}: no state overlay, the base rules apply"
    )
    lines = [title, f"clocks counted in {zone} (counties in another zone use theirs)", ""]
    for duty in duties(policy, state):
        r = duty.rule
        changed = overlay is not None and duty.origin == CHANGED
        lines += [
            f"{r.id}  [{duty.origin}]",
            f"  what:       {r.action}",
            f"  trigger:    {trigger_words(r)}",
            f"  deadline:   {deadline_words(r)}",
            f"  formula:    {r.due.formula(r.grace)}; start = "
            + ("its firing time" if r.fire is not None else "the event's occurred_at"),
            *(
                f"              {due.formula(r.grace)} when {condition_words(cond)}"
                for cond, due in r.due_when
            ),
            f"  severity:   {r.severity}"
            + "".join(f"; {sw.severity} when {condition_words(sw.when)}" for sw in r.severity_when),
            f"  recipients: {', '.join(r.recipients)}",
            f"  discharged: by {discharge_words(r)}",
            f"  if missed:  {overdue_words(r)}",
            f"  source:     {r.basis}"
            + (f"; changed by {overlay[1]}" if overlay and changed else ""),
            "",
        ]
    return "\n".join(lines)


def duty_list(policy: Policy, states: Iterable[str]) -> str:
    """One line per duty per state: what `policy check` prints."""
    lines = []
    for state in states:
        lines.append(f"{state}:")
        for duty in duties(policy, state):
            r = duty.rule
            lines.append(
                f"  {r.id}: {deadline_words(r)}, to {', '.join(r.recipients)}"
                + ("" if duty.origin == "base rule" else f" ({duty.origin})")
            )
    return "\n".join(lines)
