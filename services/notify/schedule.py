"""The delivery plan of a firing escalation and the steps it owes at a given time. Pure: no
clock reads, everything passed in.

The plan is made once, when the escalation opens (`plan_entry`), from the routing then in force,
and stored with it; each tick reads it (`due_steps`) instead of routing again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.common.escalations import Escalation
from services.common.ladder import LEVELS, climbed
from services.notify.records import OpenEntry, Recipient, Widening
from services.notify.routing import Routing, Target


def widen_classes(classes: tuple[str, ...], levels: int) -> tuple[str, ...]:
    """Recipient classes after `levels` escalation steps (services.common.ladder)."""
    return climbed(classes, levels)


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


def plan_entry(entry: OpenEntry, routing: Routing) -> OpenEntry:
    """`entry` with its plan: the first receivers and their reminder intervals, the shortest
    ack timeout among them, and the receivers each escalation level adds (the ladder has
    len(LEVELS) rungs, so no later level can add anyone)."""
    esc = entry.escalation
    first = routing.route(esc)
    known = {t.receiver for t in first}
    widenings: list[Widening] = []
    for level in range(1, len(LEVELS) + 1):
        for target in routing.route(esc, widen_classes(esc.recipients, level)):
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
    return entry.model_copy(
        update={
            "targets": recipients(first),
            "ack_timeout_s": ack_timeout.total_seconds() if ack_timeout is not None else None,
            "widenings": widenings,
            "planned": True,
        }
    )


def open_entry(
    escalation: Escalation, partition: int, first_sent_at: datetime, routing: Routing
) -> OpenEntry:
    return plan_entry(
        OpenEntry(escalation=escalation, partition=partition, first_sent_at=first_sent_at), routing
    )


def due_steps(entry: OpenEntry, max_reminders: int, now: datetime) -> list[tuple[str, Recipient]]:
    """Reminders and escalations owed for an unacknowledged escalation at `now`.

    Reminder k (step `r<k>`) to each first receiver at first_sent + k × its repeat interval, at
    most `max_reminders`. Escalation level l (step `e<l>`) to the receivers that level adds, at
    first_sent + l × the ack timeout. Steps already done are filtered by the caller through
    the sent-log.
    """
    if entry.acked_by is not None or entry.escalation.status != "firing":
        return []
    age = (now - entry.first_sent_at).total_seconds()
    out: list[tuple[str, Recipient]] = []
    for target in entry.targets:
        interval = target.repeat_interval_s
        if not interval:
            continue
        for step in range(1, min(int(age / interval), max_reminders) + 1):
            out.append((f"r{step}", target))
    if entry.ack_timeout_s:
        levels = int(age / entry.ack_timeout_s)
        for w in entry.widenings:
            if w.level <= levels:
                out.append(
                    (
                        f"e{w.level}",
                        Recipient(receiver=w.receiver, recipient_class=w.recipient_class),
                    )
                )
    return out
