"""The delivery plan of a firing escalation and the steps it owes at a given time. Pure: no
clock reads, everything passed in.

The plan is made once, when the escalation opens (`open_entry`), from the routing then in force,
and stored with it; each tick reads it (`due_steps`) instead of routing again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.common.durations import parse_duration
from services.common.escalations import Escalation
from services.common.ladder import LEVELS, climbed
from services.notify.records import OpenEntry, Plan, Recipient, Widening
from services.notify.routing import Routing, Target


def recipients(targets: Iterable[Target]) -> list[Recipient]:
    return [
        Recipient(
            receiver=t.receiver,
            recipient_class=t.recipient_class,
            repeat_interval_s=t.route.repeat_interval.total_seconds(),
            send_resolved=t.route.send_resolved,
        )
        for t in targets
    ]


def make_plan(esc: Escalation, routing: Routing, told: list[tuple[str, str]] | None = None) -> Plan:
    """The plan for `esc` under `routing`: its first receivers (or, for an entry stored
    without a plan, the receivers it told, with their route's settings or the defaults), the
    shortest ack timeout among their routes, and the receivers each escalation level adds
    (the ladder has len(LEVELS) rungs, so no later level can add anyone)."""
    first = routing.route(esc)
    if told is None:
        planned = recipients(first)
    else:
        settings = {r.receiver: r for r in recipients(first)}
        planned = [
            settings.get(receiver) or by_default(routing, receiver, cls) for receiver, cls in told
        ]
    known = {r.receiver for r in planned}
    widenings: list[Widening] = []
    for level in range(1, len(LEVELS) + 1):
        for target in routing.route(esc, climbed(esc.recipients, level)):
            if target.receiver not in known:
                known.add(target.receiver)
                widenings.append(
                    Widening(
                        level=level,
                        receiver=target.receiver,
                        recipient_class=target.recipient_class,
                    )
                )
    ack_timeout = min((t.route.ack_timeout for t in first), default=None)
    return Plan(
        recipients=planned,
        ack_timeout_s=ack_timeout.total_seconds() if ack_timeout is not None else None,
        widenings=widenings,
        max_reminders=routing.defaults.max_reminders,
    )


def by_default(routing: Routing, receiver: str, recipient_class: str) -> Recipient:
    """A receiver no route reaches any more, with the routing defaults."""
    interval = parse_duration(routing.defaults.repeat_interval)
    return Recipient(
        receiver=receiver,
        recipient_class=recipient_class,
        repeat_interval_s=interval.total_seconds() if interval else None,
        send_resolved=routing.defaults.send_resolved,
    )


def open_entry(
    escalation: Escalation, partition: int, first_sent_at: datetime, routing: Routing
) -> OpenEntry:
    plan = make_plan(escalation, routing)
    return OpenEntry(
        escalation=escalation,
        partition=partition,
        first_sent_at=first_sent_at,
        targets=[(r.receiver, r.recipient_class) for r in plan.recipients],
        plan=plan,
    )


def due_steps(entry: OpenEntry, now: datetime) -> list[tuple[str, Recipient]]:
    """Reminders and escalations owed for an unacknowledged escalation at `now`, from its plan
    (none for an entry not planned yet).

    Reminder k (step `r<k>`) to each first receiver at first_sent + k × its repeat interval, at
    most `max_reminders`. Escalation level l (step `e<l>`) to the receivers that level adds, at
    first_sent + l × the ack timeout. Steps already done are filtered by the caller through
    the sent-log.
    """
    plan = entry.plan
    if plan is None or entry.acked_by is not None or entry.escalation.status != "firing":
        return []
    age = (now - entry.first_sent_at).total_seconds()
    out: list[tuple[str, Recipient]] = []
    for target in plan.recipients:
        interval = target.repeat_interval_s
        if not interval:
            continue
        for step in range(1, min(int(age / interval), plan.max_reminders) + 1):
            out.append((f"r{step}", target))
    if plan.ack_timeout_s:
        levels = int(age / plan.ack_timeout_s)
        for w in plan.widenings:
            if w.level <= levels:
                out.append(
                    (
                        f"e{w.level}",
                        Recipient(receiver=w.receiver, recipient_class=w.recipient_class),
                    )
                )
    return out
