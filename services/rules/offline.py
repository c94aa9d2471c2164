"""Running the engine without Kafka, on a virtual clock: `carealert replay` and the scenario
tests of `carealert policy test` both use `VirtualRun`."""

from __future__ import annotations

import heapq
from datetime import datetime

from services.common.escalations import Escalation
from services.common.events import EventBase
from services.rules.core import Engine, Tick
from services.rules.state import ChildState


class VirtualRun:
    """Per-child states plus a deadline queue. `advance(t)` fires every deadline up to `t` in
    time order, each at its own time, as a live worker's ticks would."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.states: dict[str, ChildState] = {}
        self._queue: list[tuple[datetime, str]] = []
        # Each child's next deadline as last scheduled (always its state's next_deadline()):
        # a queue entry that is not is stale, and an unchanged deadline is not queued again.
        self._due: dict[str, datetime] = {}
        self.now: datetime | None = None

    def _schedule(self, key: str) -> None:
        state = self.states.get(key)
        deadline = state.next_deadline() if state else None
        if deadline is None:
            self._due.pop(key, None)
        elif self._due.get(key) != deadline:
            self._due[key] = deadline
            heapq.heappush(self._queue, (deadline, key))

    def advance(self, until: datetime) -> list[Escalation]:
        out: list[Escalation] = []
        while self._queue and self._queue[0][0] <= until:
            when, key = heapq.heappop(self._queue)
            state = self.states.get(key)
            if state is None or self._due.get(key) != when:
                continue  # stale entry: the deadline moved
            del self._due[key]  # popped: a tick that leaves it unchanged queues it again
            new, emitted = self.engine.evaluate(state, Tick(), when)
            if new is not None:
                self.states[key] = new
            out += emitted
            after = new.next_deadline() if new is not None else None
            if after is not None and after <= when:
                raise RuntimeError(f"deadline at {when.isoformat()} did not move: engine bug")
            self._schedule(key)
        if self.now is None or until > self.now:
            self.now = until
        return out

    def apply(self, event: EventBase, now: datetime | None = None) -> list[Escalation]:
        """Advance the clock to `now` (default: the event's occurred_at), then evaluate."""
        at = now or event.occurred_at
        out = self.advance(at)
        new, emitted = self.engine.evaluate(
            self.states.get(event.key), event, max(at, self.now or at)
        )
        if new is not None:
            self.states[event.key] = new
        self._schedule(event.key)
        return out + emitted
