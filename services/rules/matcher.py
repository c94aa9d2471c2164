"""Condition matching with durable-rules, used statelessly.

Each (jurisdiction, event type) gets one durable-rules ruleset holding only the conditions that
can apply to it. A fact is asserted under one fixed session id, every rule whose condition
holds records its name, and the session state is deleted at once: durable-rules keeps no
state between evaluations (it caps live sessions at 1,024 and loses them on restart), all
per-child state lives in the faust table.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from durable import engine

from services.common.events import EVENT_TYPES
from services.rules.policy import Condition, Policy, Rule

_SID = "0"
MEMO_SIZE = 50_000
_names = itertools.count()


class _QuietHost(engine.Host):  # type: ignore[misc]  # untyped library base
    """A Host without the background dispatch threads: actions run inside assert_fact only."""

    def _run(self) -> None:
        pass


def compile_condition(cond: Condition) -> dict[str, Any]:
    """Translate a policy condition (checked by policy.check_condition) to durable-rules JSON."""
    parts: list[dict[str, Any]] = []
    for key, value in cond.items():
        if key in ("all", "any"):
            subs = [compile_condition(c) for c in value]
            parts.append({"$and" if key == "all" else "$or": subs})
            continue
        tests = value if isinstance(value, dict) else {"eq": value}
        for op, operand in tests.items():
            if op == "eq":
                parts.append({key: operand})
            elif op == "ne":
                parts.append({"$neq": {key: operand}})
            elif op == "in":
                parts.append({"$or": [{key: v} for v in operand]})
            else:
                parts.append({f"${op}": {key: operand}})
    return parts[0] if len(parts) == 1 else {"$and": parts}


def fields_read(cond: Any) -> set[str]:
    """The fact fields a compiled condition reads: every key that is not an operator."""
    if isinstance(cond, list):
        return set().union(*(fields_read(c) for c in cond))
    if not isinstance(cond, dict):
        return set()
    out: set[str] = set()
    for key, value in cond.items():
        if key.startswith("$"):
            out |= fields_read(value)
        else:
            out.add(key)
    return out


def _always() -> dict[str, Any]:
    return {"$ex": {"event_type": 1}}


def _and(*conds: dict[str, Any]) -> dict[str, Any]:
    return conds[0] if len(conds) == 1 else {"$and": list(conds)}


def _ruleset_conditions(rules: tuple[Rule, ...], event_type: str) -> dict[str, dict[str, Any]]:
    """Named conditions that may hold for an event of `event_type`:
    `fire|<rule>`, `sev|<rule>|<i>`, `due|<rule>|<i>` and `res|<rule>|<i>`."""
    out: dict[str, dict[str, Any]] = {}
    for rule in rules:
        if rule.triggered_by(event_type):
            base = compile_condition(rule.when) if rule.when else _always()
            out[f"fire|{rule.id}"] = base
            for i, sw in enumerate(rule.severity_when):
                out[f"sev|{rule.id}|{i}"] = _and(base, compile_condition(sw.when))
            for i, (when, _) in enumerate(rule.due_when):
                out[f"due|{rule.id}|{i}"] = _and(base, compile_condition(when))
        for i, res in enumerate(rule.resolved_by):
            if res.when is not None and res.event in (event_type, "*"):
                out[f"res|{rule.id}|{i}"] = compile_condition(res.when)
    return out


class Matcher:
    """Answers: which of the policy's conditions hold for this fact?"""

    def __init__(self, policy: Policy) -> None:
        self._host = _QuietHost()
        self._matched: list[str] = []
        self._rulesets: dict[tuple[str, str], tuple[str, tuple[str, ...]] | None] = {}
        variants: Mapping[str, tuple[Rule, ...]] = {"": policy.rules, **policy.overlays}
        for state, rules in variants.items():
            for event_type in EVENT_TYPES:
                conds = _ruleset_conditions(rules, event_type)
                if not conds:
                    self._rulesets[(state, event_type)] = None
                    continue
                name = f"carealert_{next(_names)}"
                self._host.register_rulesets(
                    {
                        name: {
                            label: {"all": [{"m": cond}], "run": self._recorder(label)}
                            for label, cond in conds.items()
                        }
                    }
                )
                read = sorted(set().union(*(fields_read(c) for c in conds.values())))
                self._rulesets[(state, event_type)] = (name, tuple(read))
        self._overlay_states = frozenset(policy.overlays)
        self._memo: dict[tuple[str, tuple[Any, ...]], frozenset[str]] = {}

    def _recorder(self, label: str) -> Any:
        def record(_c: Any) -> None:
            self._matched.append(label)

        return record

    def match(self, state: str, fact: dict[str, Any]) -> frozenset[str]:
        """Labels of every condition that holds for `fact` (see _ruleset_conditions).

        Matching is a pure function of (jurisdiction variant, the fact's fields its conditions
        read), and those repeat a lot (small enums and counts, never ids), so answers are
        memoised on exactly those fields: durable-rules runs once per distinct combination."""
        variant = state if state in self._overlay_states else ""
        found_set = self._rulesets.get((variant, fact["event_type"]))
        if found_set is None:
            return frozenset()
        name, read = found_set
        memo_key = (name, tuple([fact[f] for f in read]))
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        found = self._match(name, fact)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[memo_key] = found
        return found

    def _match(self, name: str, fact: dict[str, Any]) -> frozenset[str]:
        self._matched = []
        try:
            self._host.assert_fact(name, {**fact, "sid": _SID})
        except engine.MessageNotHandledException:
            # No condition held and no session state was created. (Deleting a session that
            # does not exist crashes the durable-rules C engine, so only delete after a match.)
            return frozenset()
        self._host.delete_state(name, _SID)
        return frozenset(self._matched)
