"""The pure centre of the rules service.

`Engine(policy).evaluate(state, input, now) -> (new_state, escalations)`; input is an Event or
a `Tick`. It never mutates `state`, never reads a clock and never does I/O, so the faust agent,
the replay command and the scenario tests all get the same answers for the same inputs.

Guarantees (docs/clocks.md has the clock semantics):
- An event_id already applied for this child has no effect, for the life of the record
  (services.rules.dedup): at-least-once delivery and full-history re-sends are safe.
- Escalation ids depend only on (agency, child, rule, scope, triggering event id): a replay of
  the same events reproduces the same ids.
- At most one open escalation per (rule, scope); `.overdue` is emitted once per escalation.
- The state it returns is within its bounds (services.rules.state.bound), whatever it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from services.common.escalations import Escalation, Severity, Subject
from services.common.events import (
    EventBase,
    Jurisdiction,
    MissingLocated,
)
from services.common.ids import stable_id
from services.common.ladder import one_up
from services.common.zones import zone_of
from services.rules import dedup
from services.rules.clocks import Due
from services.rules.dedup import content_digest
from services.rules.matcher import Matcher
from services.rules.policy import INDICATOR_FLAGS, RISK_FLAGS, Policy, Rule, severity_above
from services.rules.state import (
    CONGREGATE,
    TIERS,
    ChildState,
    OpenEscalation,
    Pending,
    bound,
    episode_id_of,
    fold,
    ncic_fields,
    risk_tier,
)


class ConflictingDuplicate(ValueError):
    """An event_id already applied for this child arrived again with different content. Not
    applied: the worker dead-letters it (`conflicting_duplicate`) so that it cannot vanish."""


@dataclass(frozen=True)
class Tick:
    """A clock reading: fire pending rules due by `now` and escalations whose deadline is
    before `now`."""


Input = EventBase | Tick


def discharge(due_at: datetime | None, discharged_at: datetime) -> dict[str, Any]:
    """Evidence on a resolved escalation: when the duty was discharged (the discharging
    event's occurred_at) and, for a deadline, whether that was on time (at or before due_at),
    however late the event reached us."""
    out: dict[str, Any] = {"discharged_at": discharged_at.isoformat()}
    if due_at is not None:
        out["on_time"] = discharged_at <= due_at
    return out


def since_start(rule: Rule, since: str) -> bool:
    """Whether only an event at or after a duty's start discharges it: `since: start`, and
    always for a child-scope duty (an old report must not discharge a new finding's duty)."""
    return since == "start" or rule.scope == "child"


@lru_cache(maxsize=4096)
def jurisdiction(state: str, county: str | None) -> Jurisdiction:
    """One validated (frozen) Jurisdiction per place, shared by the escalations made there."""
    return Jurisdiction(state=state, county=county)


def effective_at(event: EventBase) -> datetime:
    """When what an event records happened: the child's return for `missing.located` (often
    recorded later), else `occurred_at`."""
    payload = getattr(event, "payload", None)
    return payload.located_at if isinstance(payload, MissingLocated) else event.occurred_at


def early_key(rule_id: str, since: str) -> str:
    return f"{rule_id}|start" if since == "start" else rule_id


def discharged_early(rule: Rule, early: dict[str, datetime], start: datetime) -> bool:
    """Whether an event that discharges `rule` arrived before the duty (out of order): any
    such event for a `since: any` episode duty, one at or after `start` otherwise."""
    for since in ("any", "start"):
        at = early.get(early_key(rule.id, since))
        if at is not None and (not since_start(rule, since) or at >= start):
            return True
    return False


class Engine:
    def __init__(self, policy: Policy, matcher: Matcher | None = None) -> None:
        self.policy = policy
        self.matcher = matcher or Matcher(policy)
        self._by_state: dict[str, dict[str, Rule]] = {}

    def _rules(self, state: str) -> dict[str, Rule]:
        found = self._by_state.get(state)
        if found is None:
            found = {r.id: r for r in self.policy.rules_for(state)}
            self._by_state[state] = found
        return found

    def evaluate(
        self, state: ChildState | None, item: Input, now: datetime
    ) -> tuple[ChildState | None, list[Escalation]]:
        if isinstance(item, Tick):
            if state is None:
                return None, []
            new = state.copy_state()
            out = self._tick(new, now)
            dedup.prune(new.digests, now, new.open_episodes())
            bound(new)
            return (new, out) if out or new != state else (state, [])
        digest = content_digest(item)
        if state is not None:
            seen = dedup.find(state.digests, item.event_id)
            if seen is not None:
                if seen and seen != digest:
                    raise ConflictingDuplicate(item.event_id)
                return state, []
        new = state.copy_state() if state is not None else ChildState.new(item)
        history = dedup.is_history(item.occurred_at, now)
        out = self._event(new, item, now, history)
        out += self._tick(new, now)
        key = dedup.bucket_key(episode_id_of(item), item.occurred_at)
        dedup.remember(new.digests, key, item.event_id, digest, item.occurred_at)
        dedup.prune(new.digests, now, new.open_episodes())
        bound(new)  # after the escalations are made: they carry their episode's Subject
        return new, out

    # --- events ---------------------------------------------------------------------------

    def _fact(self, st: ChildState, event: EventBase, previous_tier: str) -> dict[str, Any]:
        payload: Any = getattr(event, "payload", None)
        episode_id = episode_id_of(event)
        episode = st.episodes.get(episode_id) if episode_id else None
        age = st.age_at(event.occurred_at)

        fields = payload.__dict__ if payload is not None else {}
        risks = set(episode.immediate_risks) if episode else set()

        def text(name: str) -> str:
            value = fields.get(name)
            return value if isinstance(value, str) else ""

        return {
            "event_type": event.event_type,
            "state": st.state,
            "county": st.county or "",
            "age": -1 if age is None else age,
            "sex": st.sex or "unknown",
            "risk_tier": st.risk_tier,
            "previous_tier": previous_tier,
            "tier_rose": TIERS.index(st.risk_tier) > TIERS.index(previous_tier),
            "tier_changed": st.risk_tier != previous_tier,
            "setting": st.setting or "none",
            "congregate_care": st.setting in CONGREGATE,
            "placements_last_12_months": st.count_since(st.placement_starts, event.occurred_at),
            "runs_last_12_months": st.count_since(st.runs, event.occurred_at),
            "risk_indicator_count": len(st.risk_indicators),
            "episode_open": bool(episode and episode.open),
            "circumstances": episode.circumstances if episode else "",
            "immediate_risk_count": len(episode.immediate_risks) if episode else 0,
            **ncic_fields(payload),
            "result": text("result"),
            "tool": text("tool"),
            "party": text("party"),
            "level": text("level"),
            "reason": text("reason"),
            "location_class": text("location_class"),
            "trafficking_status": st.trafficking_status or "",
            "trafficking_type": text("type"),
            **{name: r in risks for name, r in RISK_FLAGS},
            **{name: r in st.risk_indicators for name, r in INDICATOR_FLAGS},
        }

    def _event(
        self, st: ChildState, event: EventBase, now: datetime, history: bool
    ) -> list[Escalation]:
        """Apply an event: resolve what it discharges, fire what it triggers (never for a
        history event: services.rules.dedup)."""
        previous_tier = st.risk_tier
        episode_id = episode_id_of(event)
        seen_before = (
            set(st.episodes[episode_id].seen_types) if episode_id in st.episodes else set()
        )
        fold(st, event, history)
        if not history:
            # At the newest time the state knows: a late event does not set the tier back.
            latest = max(event.occurred_at, st.jurisdiction_at or event.occurred_at)
            st.risk_tier = risk_tier(st, latest, self.policy.risk)
        fact = self._fact(st, event, previous_tier)
        matched = self.matcher.match(st.state, fact)
        rules = self._rules(st.state)
        out = self._resolve(st, event, episode_id, matched, rules, now)
        self._remember_discharges(st, event, episode_id, matched, rules)
        if history:
            return out
        for rule in rules.values():
            if rule.triggered_by(event.event_type) and f"fire|{rule.id}" in matched:
                out += self._fire(st, rule, event, episode_id, fact, matched, seen_before, now)
        return out

    def _resolves(
        self, rule: Rule, event: EventBase, matched: frozenset[str], start: datetime | None
    ) -> bool:
        """Whether `event` discharges a duty of `rule` that started at `start` (None: not known,
        for an escalation opened before state v3: any time counts)."""
        for i, res in enumerate(rule.resolved_by):
            if res.event not in (event.event_type, "*"):
                continue
            if start is not None and event.occurred_at < start and since_start(rule, res.since):
                continue  # made before the duty began: it cannot discharge it
            if res.when is None or f"res|{rule.id}|{i}" in matched:
                return True
        return False

    def _resolve(
        self,
        st: ChildState,
        event: EventBase,
        episode_id: str | None,
        matched: frozenset[str],
        rules: dict[str, Rule],
        now: datetime,
    ) -> list[Escalation]:
        out: list[Escalation] = []
        effective = effective_at(event)
        for esc_id, esc in list(st.open.items()):
            rule = rules.get(esc.rule_id)
            if rule is None:
                continue
            if esc.episode_id and episode_id and esc.episode_id != episode_id:
                continue
            # A duty that fired on the clock, cancelled by something that happened before it
            # began but reached us after (the child was found at 04:00, recorded at 09:00).
            not_owed = (
                event.event_type in rule.cancel_on
                and esc.started_at is not None
                and effective < esc.started_at
            )
            if not not_owed and not self._resolves(rule, event, matched, esc.started_at):
                continue
            del st.open[esc_id]
            settled = {"not_owed": True} if not_owed else discharge(esc.due_at, event.occurred_at)
            esc = esc.model_copy(  # shared with the state this one was copied from
                update={
                    "triggered_by": [*esc.triggered_by, event.event_id],
                    "evidence": {**esc.evidence, **settled},
                }
            )
            out.append(self._emit(st, esc, "resolved", now))
            if esc.overdue_id:
                out.append(self._emit(st, self._overdue_view(esc), "resolved", now))
        kept: list[Pending] = []
        for p in st.pending:
            rule = rules.get(p.rule_id)
            same_episode = p.episode_id is None or episode_id in (None, p.episode_id)
            cancelled = rule is None or (
                same_episode
                and (
                    (event.event_type in rule.cancel_on and effective < p.fire_at)
                    or self._resolves(rule, event, matched, p.fire_at)
                )
            )
            if not cancelled:
                kept.append(p)
        st.pending = kept
        return out

    def _remember_discharges(
        self,
        st: ChildState,
        event: EventBase,
        episode_id: str | None,
        matched: frozenset[str],
        rules: dict[str, Rule],
    ) -> None:
        """Remember which duties `event` would discharge, for a trigger that arrives after it
        (out of order): only for episode rules whose trigger has not been seen in the episode
        (once it has, the rule has fired or never will), and only named event types (a `"*"`
        resolution is about state, not an act)."""
        episode = st.episodes.get(episode_id) if episode_id else None
        early = episode.discharged if episode is not None else st.discharged
        seen = set(episode.seen_types) if episode is not None else set()
        for rule in rules.values():
            if "*" in rule.on or rule.on & seen:
                continue
            for i, res in enumerate(rule.resolved_by):
                if res.event != event.event_type:
                    continue
                if res.when is not None and f"res|{rule.id}|{i}" not in matched:
                    continue
                key = early_key(rule.id, res.since)
                if key not in early or early[key] < event.occurred_at:
                    early[key] = event.occurred_at

    def _fire(
        self,
        st: ChildState,
        rule: Rule,
        event: EventBase,
        episode_id: str | None,
        fact: dict[str, Any],
        matched: frozenset[str],
        seen_before: set[str],
        now: datetime,
    ) -> list[Escalation]:
        if rule.scope == "episode" and episode_id is None:
            return []
        scope_key = episode_id if rule.scope == "episode" and episode_id else "child"
        if any(e.rule_id == rule.id and e.scope_key == scope_key for e in st.open.values()):
            return []
        # Out of order: the discharging event already arrived for this episode. (Not for a
        # `since: start` resolution: an event before the duty began cannot discharge it.)
        for res in rule.resolved_by:
            if res.when is None and res.since == "any" and res.event in seen_before:
                return []
        episode = st.episodes.get(episode_id) if episode_id else None
        early = episode.discharged if episode is not None and rule.scope == "episode" else None
        early = st.discharged if early is None else early
        if rule.fire is not None:
            if any(p.rule_id == rule.id and p.scope_key == scope_key for p in st.pending):
                return []
            start = event.occurred_at
            if rule.fire_start == "last_seen_at" and episode is not None:
                start = episode.last_seen_at
            # Never before the agency knew: a late report starts the clock when it arrives.
            fire_at = max(rule.fire.at(start, zone_of(st.state, st.county)), event.occurred_at)
            if discharged_early(rule, early, fire_at):
                return []
            st.pending.append(
                Pending(
                    rule_id=rule.id,
                    scope_key=scope_key,
                    episode_id=episode_id if rule.scope == "episode" else None,
                    fire_at=fire_at,
                    trigger_event_id=event.event_id,
                )
            )
            return []
        if discharged_early(rule, early, event.occurred_at):
            return []
        severity: Severity = rule.severity
        for i, sw in enumerate(rule.severity_when):
            if f"sev|{rule.id}|{i}" in matched:
                severity = sw.severity
                break
        due = rule.due
        for i, (_, conditional) in enumerate(rule.due_when):
            if f"due|{rule.id}|{i}" in matched:
                due = conditional
                break
        evidence = self._evidence(st, fact)
        return [
            self._open(
                st,
                rule,
                scope_key,
                episode_id,
                severity,
                event.occurred_at,
                event.event_id,
                evidence,
                now,
                due,
            )
        ]

    def _evidence(self, st: ChildState, fact: dict[str, Any]) -> dict[str, Any]:
        evidence: dict[str, Any] = {
            "risk_tier": st.risk_tier,
            "runs_last_12_months": fact["runs_last_12_months"],
            "setting": fact["setting"],
        }
        if fact["age"] >= 0:
            evidence["age"] = fact["age"]
        if fact["immediate_risk_count"]:
            evidence["immediate_risk_count"] = fact["immediate_risk_count"]
        if fact["event_type"] == "risk.tier-changed" or fact["tier_changed"]:
            evidence["previous_tier"] = fact["previous_tier"]
        return evidence

    def _open(
        self,
        st: ChildState,
        rule: Rule,
        scope_key: str,
        episode_id: str | None,
        severity: Severity,
        start: datetime,
        trigger_event_id: str,
        evidence: dict[str, Any],
        now: datetime,
        due: Due | None = None,
    ) -> Escalation:
        """Open an escalation of `rule` whose deadline counts from `start` (`due`: the deadline
        chosen by `due_when`, default the rule's)."""
        due = due if due is not None else rule.due
        esc_id = stable_id(st.agency_id, st.child_id, rule.id, scope_key, trigger_event_id)
        overdue = rule.overdue
        esc = OpenEscalation(
            escalation_id=esc_id,
            rule_id=rule.id,
            scope_key=scope_key,
            episode_id=episode_id if rule.scope == "episode" else None,
            severity=severity,
            recipients=rule.recipients,
            action=rule.action,
            basis=rule.basis,
            due_at=due.at(start, zone_of(st.state, st.county), st.state, rule.grace),
            evidence=evidence,
            triggered_by=[trigger_event_id],
            created_at=now,
            started_at=start,
            overdue_severity=(overdue.severity or severity_above(severity)) if overdue else None,
            overdue_recipients=(overdue.recipients or one_up(rule.recipients)) if overdue else (),
            overdue_action=(overdue.action or f"OVERDUE: {rule.action}") if overdue else None,
        )
        # Due "now" has no overdue step: it is a broadcast, not a deadline someone can miss.
        if not due.has_overdue:
            esc.overdue_severity = None
        st.open[esc_id] = esc
        return self._emit(st, esc, "firing", now)

    # --- clock ----------------------------------------------------------------------------

    def _tick(self, st: ChildState, now: datetime) -> list[Escalation]:
        out: list[Escalation] = []
        rules = self._rules(st.state)
        due = sorted((p for p in st.pending if p.fire_at <= now), key=lambda p: p.fire_at)
        for p in due:
            st.pending.remove(p)
            rule = rules.get(p.rule_id)
            if rule is None:
                continue
            episode = st.episodes.get(p.episode_id) if p.episode_id else None
            if episode is not None and episode.located_at is not None:
                if episode.located_at <= p.fire_at:
                    continue  # found before the rule was due to fire
            fact = {
                "runs_last_12_months": st.count_since(st.runs, p.fire_at),
                "setting": st.setting or "none",
                "age": st.age_at(p.fire_at) if st.date_of_birth else -1,
                "immediate_risk_count": len(episode.immediate_risks) if episode else 0,
                "event_type": "tick",
                "tier_changed": False,
            }
            evidence = self._evidence(st, fact)
            evidence["fired_at"] = p.fire_at.isoformat()
            out.append(
                self._open(
                    st,
                    rule,
                    p.scope_key,
                    p.episode_id,
                    rule.severity,
                    p.fire_at,
                    p.trigger_event_id,
                    evidence,
                    now,
                )
            )
        for esc in sorted(st.open.values(), key=lambda e: e.escalation_id):
            # Discharged at exactly due_at is on time: overdue only once the clock is past it.
            if esc.due_at is None or esc.due_at >= now or esc.overdue_id is not None:
                continue
            if esc.overdue_severity is None:
                continue
            overdue_id = stable_id(esc.escalation_id, "overdue")
            esc = esc.model_copy(update={"overdue_id": overdue_id})  # shared, as in _resolve
            st.open[esc.escalation_id] = esc
            out.append(self._emit(st, self._overdue_view(esc), "firing", now))
        return out

    # --- output ---------------------------------------------------------------------------

    def _overdue_view(self, esc: OpenEscalation) -> OpenEscalation:
        assert esc.overdue_id is not None and esc.overdue_severity is not None
        return esc.model_copy(
            update={
                "escalation_id": esc.overdue_id,
                "rule_id": f"{esc.rule_id}.overdue",
                "severity": esc.overdue_severity,
                "recipients": esc.overdue_recipients,
                "action": esc.overdue_action or esc.action,
                "evidence": {
                    **esc.evidence,
                    "original_escalation_id": esc.escalation_id,
                    "was_due_at": esc.due_at.isoformat() if esc.due_at else None,
                },
                "due_at": None,
            }
        )

    def _emit(self, st: ChildState, esc: OpenEscalation, status: str, now: datetime) -> Escalation:
        episode = st.episodes.get(esc.episode_id) if esc.episode_id else None
        subject: Subject | None = episode.subject if episode else None
        return Escalation(
            escalation_id=esc.escalation_id,
            status=status,
            rule_id=esc.rule_id,
            policy_version=self.policy.version,
            severity=esc.severity,
            action=esc.action,
            basis=esc.basis,
            agency_id=st.agency_id,
            child_id=st.child_id,
            episode_id=esc.episode_id,
            jurisdiction=jurisdiction(st.state, st.county),
            recipients=esc.recipients,
            due_at=esc.due_at,
            evidence=esc.evidence,
            triggered_by=tuple(esc.triggered_by),
            created_at=now,
            caseworker_id=st.caseworker_id,
            supervisor_id=st.supervisor_id,
            subject=subject,
            silenceable=self._silenceable(st.state, esc.rule_id) or None,
        )

    def _silenceable(self, state: str, rule_id: str) -> bool:
        """Whether the policy lets a silence mute this rule's notifications (an overdue
        escalation's rule id is the engine's, never silenceable)."""
        rule = self._rules(state).get(rule_id)
        return rule is not None and rule.silenceable
