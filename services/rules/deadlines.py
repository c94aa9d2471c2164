"""Deadlines: an in-memory index of each child's next deadline for the partitions this worker
owns, and the timer's step that sends a tick for each child whose deadline has come to the ticks
topic, on the child's own partition. The agent evaluates the tick like an event, so only the
owner of a partition ever changes its children's state and every deadline fires once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from faust.types import TableT, TopicT

from services.common import topics
from services.rules.metrics import RulesMetrics
from services.rules.state import ChildState
from services.rules.transport import RulesApp

log = logging.getLogger(__name__)


class DeadlineIndex:
    """child key → (next deadline, partition), for the partitions this worker owns."""

    def __init__(self) -> None:
        self.due: dict[bytes, tuple[datetime, int]] = {}
        self.ticking: dict[bytes, datetime] = {}

    def update(self, key: bytes, state: ChildState | None) -> None:
        self.ticking.pop(key, None)
        deadline = state.next_deadline() if state is not None else None
        if deadline is None or state is None or state.partition is None:
            self.due.pop(key, None)
        else:
            self.due[key] = (deadline, state.partition)

    def due_now(self, now: datetime, resend_after_s: float) -> list[tuple[bytes, int]]:
        """Keys whose deadline has come and that have no tick in flight (or one long lost)."""
        out: list[tuple[bytes, int]] = []
        for key, (when, partition) in self.due.items():
            sent = self.ticking.get(key)
            if when <= now and (sent is None or (now - sent).total_seconds() > resend_after_s):
                out.append((key, partition))
                self.ticking[key] = now
        return out


class Deadlines:
    """Keeps `index` to the partitions this worker owns (rebuilt from the table after each
    rebalance) and sends the ticks it finds due."""

    def __init__(
        self,
        app: RulesApp,
        table: TableT[bytes, bytes | None],
        ticks: TopicT,
        index: DeadlineIndex,
        metrics: RulesMetrics,
        *,
        tick_interval_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.app = app
        self.table = table
        self.ticks = ticks
        self.index = index
        self.metrics = metrics
        self.tick_interval_s = tick_interval_s
        self.clock = clock
        self.rebuild_needed = True

    async def on_rebalance(self, _sender: Any, *_args: Any, signal: Any, **_kwargs: Any) -> None:  # noqa: ARG002
        self.rebuild_needed = True

    def rebuild(self) -> None:
        actives = {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topics.EVENTS
        }
        self.index.due.clear()
        self.index.ticking.clear()
        for key, raw in self.table.items():
            if raw is None:
                continue
            try:
                state = ChildState.from_bytes(raw)
            except ValueError as exc:  # unreadable state: its next event goes to the DLQ
                log.error("stored state unreadable", extra={"reason": type(exc).__name__})
                continue
            if state.partition in actives:
                self.index.update(key, state)

    async def send_due(self) -> None:
        """Send a tick for every child whose deadline has come; nothing while rebalancing."""
        if self.app.rebalancing:
            return
        if self.rebuild_needed:
            self.rebuild_needed = False
            self.rebuild()
        now = self.clock()
        for key, partition in self.index.due_now(
            now, resend_after_s=max(30.0, 6 * self.tick_interval_s)
        ):
            await self.ticks.send(key=key, value=b"tick", partition=partition)
        self.metrics.deadlines_tracked.set(len(self.index.due))
