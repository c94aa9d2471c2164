"""Reminders and escalation steps owed for an unacknowledged escalation at a given time. Pure:
no clock reads, everything passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.common.ladder import climbed
from services.notify.records import OpenEntry
from services.notify.routing import Routing, Target


def widen_classes(classes: tuple[str, ...], levels: int) -> tuple[str, ...]:
    """Recipient classes after `levels` escalation steps (services.common.ladder)."""
    return climbed(classes, levels)


def due_steps(entry: OpenEntry, routing: Routing, now: datetime) -> list[tuple[str, Target]]:
    """Reminders and escalations owed for an unacknowledged escalation at `now`.

    Reminder k (step `r<k>`) to each original target at first_sent + k × its route's
    repeat_interval, at most `max_reminders`. Escalation level l (step `e<l>`) to the receivers
    the widened recipient classes add, at first_sent + l × the shortest ack_timeout among the
    original targets. Steps already done are filtered by the caller through the sent-log.
    """
    if entry.acked_by is not None or entry.escalation.status != "firing":
        return []
    age = now - entry.first_sent_at
    out: list[tuple[str, Target]] = []
    original = routing.route(entry.escalation)
    for target in original:
        interval = target.route.repeat_interval
        k = min(int(age / interval), routing.defaults.max_reminders)
        for step in range(1, k + 1):
            out.append((f"r{step}", target))
    if original:
        ack_timeout = min(t.route.ack_timeout for t in original)
        levels = int(age / ack_timeout) if ack_timeout > timedelta(0) else 0
        known = {t.receiver for t in original}
        for level in range(1, levels + 1):
            classes = widen_classes(entry.escalation.recipients, level)
            for target in routing.route(entry.escalation, classes):
                if target.receiver not in known:
                    known.add(target.receiver)
                    out.append((f"e{level}", target))
    return out
