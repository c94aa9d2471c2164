"""The delivery plan of a firing escalation and the steps it owes at a given time. Pure: no
clock reads, everything passed in.

The plan is made once, when the escalation opens (`open_entry`), from the routing then in force,
and stored with it; each tick reads it (`due_steps`) instead of routing again.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.durations import parse_duration
from services.common.escalations import Escalation
from services.common.ladder import LEVELS, climbed
from services.notify.addresses import NOBODY_REASONS
from services.notify.records import (
    NotificationRecord,
    OpenEntry,
    Plan,
    PlanLevel,
    Recipient,
    Widening,
)
from services.notify.routing import EscalationPolicy, Routing, Target


def recipients(targets: Iterable[Target]) -> list[Recipient]:
    return [
        Recipient(
            receiver=t.receiver,
            recipient_class=t.recipient_class,
            repeat_interval_s=t.route.repeat_interval.total_seconds(),
            send_resolved=t.route.send_resolved,
            digest_s=t.route.digest.total_seconds() if t.route.digest else None,
        )
        for t in targets
    ]


def make_plan(esc: Escalation, routing: Routing, told: list[tuple[str, str]] | None = None) -> Plan:
    """The plan for `esc` under `routing`: its first receivers (or, for an entry stored
    without a plan, the receivers it told, with their route's settings or the defaults), the
    shortest ack timeout among their routes, and its escalation levels: the agency's escalation
    policy (the first receivers' route's, else the agency's default) or the staff ladder."""
    first = routing.route(esc)
    if told is None:
        planned = recipients(first)
    else:
        settings = {r.receiver: r for r in recipients(first)}
        planned = [
            settings.get(receiver) or by_default(routing, receiver, cls) for receiver, cls in told
        ]
    ack_timeout = min((t.route.ack_timeout for t in first), default=None)
    ack_s = ack_timeout.total_seconds() if ack_timeout is not None else None
    agency = routing.agencies.get(esc.agency_id)
    policy = agency.policy(t.route.escalation_policy for t in first) if agency else None
    levels = (
        policy_levels(policy)
        if policy is not None
        else ladder_levels(esc, routing, {r.receiver for r in planned}, ack_s)
    )
    return Plan(
        recipients=planned,
        ack_timeout_s=ack_s,
        widenings=[
            Widening(level=i, receiver=r.receiver, recipient_class=r.recipient_class)
            for i, level in enumerate(levels, start=1)
            if "." not in level.step
            for r in level.recipients
        ],
        max_reminders=routing.defaults.max_reminders,
        levels=levels,
        policy=policy.name if policy is not None else None,
    )


def ladder_levels(
    esc: Escalation, routing: Routing, told: set[str], ack_s: float | None
) -> list[PlanLevel]:
    """The staff ladder as escalation levels: each level adds the receivers of the next rung
    (caseworker → supervisor → director) not told yet, one ack timeout after the one before
    (there are len(LEVELS) rungs, so no later level can add anyone)."""
    known = set(told)
    levels = []
    for level in range(1, len(LEVELS) + 1):
        added = []
        for target in routing.route(esc, climbed(esc.recipients, level)):
            if target.receiver not in known:
                known.add(target.receiver)
                added.append(
                    Recipient(receiver=target.receiver, recipient_class=target.recipient_class)
                )
        levels.append(PlanLevel(step=f"e{level}", recipients=added, wait_s=ack_s or 0.0))
    return levels


def policy_levels(policy: EscalationPolicy) -> list[PlanLevel]:
    """An escalation policy's levels, then all of them again `repeat` times."""
    return [
        PlanLevel(
            step=f"e{i}" if run == 1 else f"e{i}.{run}",
            recipients=[
                Recipient(receiver=r.receiver, recipient_class=r.recipient_class)
                for r in level.reaches
            ],
            wait_s=level.wait.total_seconds(),
        )
        for run in range(1, policy.repeat + 2)
        for i, level in enumerate(policy.levels, start=1)
    ]


def by_default(routing: Routing, receiver: str, recipient_class: str) -> Recipient:
    """A receiver no route reaches any more, with the routing defaults."""
    interval = parse_duration(routing.defaults.repeat_interval)
    return Recipient(
        receiver=receiver,
        recipient_class=recipient_class,
        repeat_interval_s=interval.total_seconds() if interval else None,
        send_resolved=routing.defaults.send_resolved,
    )


def plan_key(esc: Escalation) -> tuple[str, ...]:
    """Everything `make_plan` reads of an escalation (its routing labels and recipient
    classes): two escalations with the same key get equal plans under the same routing."""
    return (
        esc.agency_id,
        esc.severity,
        esc.rule_id,
        esc.jurisdiction.state,
        esc.jurisdiction.county or "",
        esc.status,
        *esc.recipients,
    )


def open_entry(
    escalation: Escalation,
    partition: int,
    first_sent_at: datetime,
    routing: Routing,
    plan: Plan | None = None,
) -> OpenEntry:
    """`plan`: `make_plan(escalation, routing)` when the caller has it already."""
    plan = plan or make_plan(escalation, routing)
    return OpenEntry(
        escalation=escalation,
        partition=partition,
        first_sent_at=first_sent_at,
        targets=[(r.receiver, r.recipient_class) for r in plan.recipients],
        plan=plan,
    )


@dataclass(frozen=True)
class Due:
    """A step owed: its name, whom it tells, and when it was due (whoever is on call then is
    who it reaches, however late it runs)."""

    step: str
    target: Recipient
    at: datetime


def due_steps(entry: OpenEntry, now: datetime, nobody: Set[str] = frozenset()) -> list[Due]:
    """Reminders and escalations owed for an unacknowledged escalation at `now`, from its plan
    (none for an entry not planned yet).

    Reminder k (step `r<k>`) to each first receiver at first_sent + k × its repeat interval, at
    most `max_reminders`. Escalation level 1 at first_sent + the ack timeout, each next level
    its predecessor's wait later; a level in `nobody` (every receiver it tells reached nobody:
    an empty schedule, a disabled person) falls through: the next one is due at once. A plan
    the release before stored has no levels: level l at first_sent + l × the ack timeout, to
    its widenings. Steps already done are filtered by the caller through the sent-log.
    """
    plan = entry.plan
    if plan is None or entry.acked_by is not None or entry.escalation.status != "firing":
        return []
    start = entry.first_sent_at
    age = (now - start).total_seconds()
    out: list[Due] = []
    for target in plan.recipients:
        interval = target.repeat_interval_s
        if not interval:
            continue
        for step in range(1, min(int(age / interval), plan.max_reminders) + 1):
            out.append(Due(f"r{step}", target, start + timedelta(seconds=step * interval)))
    if not plan.ack_timeout_s:
        return out
    if plan.levels is None:
        for w in plan.widenings:
            at = w.level * plan.ack_timeout_s
            if at <= age:
                target = Recipient(receiver=w.receiver, recipient_class=w.recipient_class)
                out.append(Due(f"e{w.level}", target, start + timedelta(seconds=at)))
        return out
    at = plan.ack_timeout_s
    for level in plan.levels:
        if at > age:
            break
        for target in level.recipients:
            out.append(Due(level.step, target, start + timedelta(seconds=at)))
        if level.step not in nobody:
            at += level.wait_s
    return out


def reached_nobody(plan: Plan | None, outcomes: Iterable[NotificationRecord]) -> set[str]:
    """The escalation levels of `plan` whose every receiver's final outcome says nobody was
    there to tell (an empty schedule, a disabled person): such a level falls through to the
    next one at once. A level still waiting on one of its receivers has not fallen through."""
    if plan is None or not plan.levels:
        return set()
    final = {(r.step, r.receiver): r for r in outcomes}
    out = set()
    for level in plan.levels:
        records = [final.get((level.step, t.receiver)) for t in level.recipients]
        if records and all(
            r is not None and r.status == "failed" and r.reason in NOBODY_REASONS for r in records
        ):
            out.add(level.step)
    return out
