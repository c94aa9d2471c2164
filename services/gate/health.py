"""What the gate's stall watch and its /healthz and /readyz see."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from services.common.progress import PartitionKey
from services.common.stallwatch import StallWatch
from services.common.unreadable import Held
from services.gate.metrics import GateMetrics
from services.gate.worker import Gate


class Health:
    """One gate's stall watch inputs and health answers."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        gate: Gate,
        watch: StallWatch,
        held: Held,
        metrics: GateMetrics,
    ) -> None:
        self.consumer = consumer
        self.gate = gate
        self.watch = watch
        self.held = held
        self.metrics = metrics
        self.started = False
        """Set once the consumer has subscribed (it may own no partition: no agency yet)."""

    def owned(self) -> set[PartitionKey]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def counting(self) -> bool:
        """Stall time counts while the gate owns partitions and is not waiting to write a
        batch again (a broker outage is not a stall)."""
        return bool(self.consumer.assignment()) and not self.gate.retrying

    def excused(self) -> frozenset[PartitionKey]:
        """Held partitions (a record on them cannot be read): a restart would not help."""
        return self.held.keep_only(self.owned(), self.metrics.unreadable)

    async def watch_progress(self) -> None:
        await self.watch.run(self.owned, self.counting, self.excused)

    def healthz(self) -> tuple[bool, str]:
        if not self.watch.healthy:
            return False, "unhealthy: a partition stalled; restarting"
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        if not self.watch.healthy:
            return False, "not ready: a partition stalled; restarting"
        if not self.started:
            return False, "not ready: starting"
        unreadable = self.held.readiness()
        if unreadable is not None:
            return unreadable
        return True, "ready"
