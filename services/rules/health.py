"""What the rules worker's stall watch and its /healthz and /readyz see: the partitions it owns,
whether stall time counts, how far a table recovery has come, the partitions a record the
worker cannot read holds; and the fault injection the stall tests use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from services.common import web
from services.common.progress import Offsets, PartitionKey
from services.common.stallwatch import StallWatch
from services.rules.metrics import RulesMetrics
from services.rules.transport import RulesApp

log = logging.getLogger(__name__)


class Health:
    """One worker's stall watch inputs and health answers."""

    def __init__(
        self,
        app: RulesApp,
        watch: StallWatch,
        metrics: RulesMetrics,
        *,
        consumed: Collection[str],
        retrying: Callable[[], bool],
        fault_file: Path | None,
    ) -> None:
        self.app = app
        self.watch = watch
        self.metrics = metrics
        self.consumed = consumed
        self.retrying = retrying
        self.fault_file = fault_file
        self.fault_paused = False

    def owned(self) -> set[PartitionKey]:
        return {
            (tp.topic, tp.partition)
            for tp in self.app.consumer.assignment()
            if tp.topic in self.consumed
        }

    def counting(self) -> bool:
        """Stall time counts only while the worker could be making progress. faust stays
        `rebalancing` until table recovery ends, so a recovery counts (by its own progress)."""
        if self.retrying():
            return False
        recovery: Any = getattr(self.app.tables, "recovery", None)
        return bool(recovery is not None and recovery.in_recovery) or not self.app.rebalancing

    def recovering(self) -> dict[PartitionKey, Offsets] | None:
        """While faust recovers the table (every stream partition is paused meanwhile): how
        far it has read each changelog partition and how far it must read."""
        recovery: Any = self.app.tables.recovery  # type: ignore[attr-defined]  # on TableManager, not its ABC
        if not recovery.in_recovery:
            return None
        progress: dict[PartitionKey, Offsets] = {}
        for tp, highwater in recovery.active_highwaters.items():
            if highwater is None:
                continue
            offset = recovery.active_offsets.get(tp)
            progress[(tp.topic, tp.partition)] = Offsets(
                -1 if offset is None else int(offset), int(highwater)
            )
        return progress

    def excused(self) -> frozenset[PartitionKey]:
        """Held partitions (a record on them cannot be read): a restart would not help."""
        return self.app.held.keep_only(self.owned(), self.metrics.unreadable)

    async def watch_progress(self) -> None:
        await self.watch.run(self.owned, self.counting, self.excused, recovering=self.recovering)

    def healthz(self) -> tuple[bool, str]:
        if not self.watch.healthy:
            return False, "unhealthy: a partition stalled; restarting"
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        if not self.watch.healthy:
            return False, "not ready: a partition stalled; restarting"
        unreadable = self.app.held.readiness()
        if unreadable is not None:
            return unreadable
        if self.app.rebalancing or not self.app.consumer.assignment():
            return False, "not ready: rebalancing or no partitions assigned"
        return True, "ready"

    async def serve(self, host: str, port: int) -> None:
        health_app = web.health_app(self.metrics.registry, self.healthz, self.readyz)
        await web.serve(health_app, host, port)

    def pause_if_fault_injected(self) -> None:
        """While the fault file exists, stop fetching (the stall tests' wedged consumer)."""
        if self.fault_file is not None and self.fault_file.exists():
            if not self.fault_paused:
                log.warning("fault injection: fetching paused")
            self.fault_paused = True
            self.app.consumer.pause_partitions(self.app.consumer.assignment())
