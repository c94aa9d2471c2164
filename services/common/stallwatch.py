"""The stall watch every worker runs beside its consumer.

Every `interval_s` it asks the broker (through an `OffsetsProbe`, its own client, so a wedged
consumer cannot hide itself) where the worker's consumer group stands on each partition the worker
owns, feeds that to the pure `StallDetector`, and publishes the count of stalled partitions. When
a partition stalls the worker turns unhealthy (`/healthz` and `/readyz` answer 503), logs which
partitions stalled, and a few seconds later (so a scrape and a probe can see it) exits with
`STALL_EXIT_CODE`, for its supervisor (k8s, deploy/local/run.sh) to start it again: a fresh
consumer resumes from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.common.progress import Offsets, PartitionKey, StallDetector

log = logging.getLogger(__name__)

STALL_EXIT_CODE = 75  # EX_TEMPFAIL: a fresh start is expected to fix it


class ProbeFailed(RuntimeError):
    """The broker did not answer: the check does not count."""


class OffsetsProbe(Protocol):
    def offsets(
        self, group: str, partitions: Collection[PartitionKey]
    ) -> dict[PartitionKey, Offsets]:
        """Committed position and end offset of each partition. Raises ProbeFailed."""


class MemoryOffsetsProbe:
    """In-memory twin for unit tests: offsets set by the test; `reachable` False fails probes."""

    def __init__(self) -> None:
        self.committed: dict[PartitionKey, int] = {}
        self.ends: dict[PartitionKey, int] = {}
        self.reachable = True

    def offsets(
        self,
        group: str,  # noqa: ARG002  # one group per twin
        partitions: Collection[PartitionKey],
    ) -> dict[PartitionKey, Offsets]:
        if not self.reachable:
            raise ProbeFailed("broker unreachable")
        return {
            key: Offsets(self.committed.get(key, 0), self.ends.get(key, 0)) for key in partitions
        }


class KafkaOffsetsProbe:
    """kafka-python, from a worker thread: the group's committed offsets and the end offsets.
    A partition the group never committed counts from its beginning offset."""

    def __init__(self, client_config: Mapping[str, Any], timeout_s: float = 5.0) -> None:
        self.client_config = dict(client_config)
        self.timeout_ms = int(timeout_s * 1000)
        self._consumers: dict[str, KafkaConsumer] = {}
        self._reader: KafkaConsumer | None = None

    def _consumer(self, group: str) -> KafkaConsumer:
        consumer = self._consumers.get(group)
        if consumer is None:
            consumer = KafkaConsumer(
                **self.client_config,
                group_id=group,
                enable_auto_commit=False,
                # end offsets up to the last stable offset: an open transaction is not a stall
                isolation_level="read_committed",
            )
            self._consumers[group] = consumer
        return consumer

    def offsets(
        self, group: str, partitions: Collection[PartitionKey]
    ) -> dict[PartitionKey, Offsets]:
        if not partitions:
            return {}
        tps = [TopicPartition(t, p) for t, p in partitions]
        try:
            consumer = self._consumer(group)
            ends = consumer.end_offsets(tps, timeout_ms=self.timeout_ms)
            begins: dict[TopicPartition, int] | None = None
            out: dict[PartitionKey, Offsets] = {}
            for tp in tps:
                committed = consumer.committed(tp, timeout_ms=self.timeout_ms)
                if committed is None:
                    if begins is None:
                        begins = consumer.beginning_offsets(tps, timeout_ms=self.timeout_ms)
                    committed = begins[tp]
                out[(tp.topic, tp.partition)] = Offsets(int(committed), int(ends[tp]))
            behind = {tp: out[(tp.topic, tp.partition)] for tp in tps}
            for tp in self._nothing_to_read({t: o for t, o in behind.items() if o.behind}):
                where = out[(tp.topic, tp.partition)]
                out[(tp.topic, tp.partition)] = Offsets(where.position, where.position)
            return out
        except (KafkaError, OSError, KeyError, ValueError) as exc:
            self.close()
            raise ProbeFailed(type(exc).__name__) from exc

    def _nothing_to_read(self, behind: Mapping[TopicPartition, Offsets]) -> set[TopicPartition]:
        """Partitions whose offsets past the committed one hold no record a consumer reads:
        a transaction's commit or abort marker, an aborted transaction's records. A worker
        commits one past the last record it processed, never past a trailing marker, so such
        a partition looks behind forever. Found by reading from the committed offset: nothing
        comes back and the position reaches the end."""
        if not behind:
            return set()
        if self._reader is None:
            self._reader = KafkaConsumer(
                **self.client_config,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                max_partition_fetch_bytes=64 * 1024,
            )
        reader = self._reader
        nothing: set[TopicPartition] = set()
        for tp, where in behind.items():  # one at a time: a busy partition hides no other
            reader.assign([tp])
            reader.seek(tp, where.position)
            try:
                found = reader.poll(timeout_ms=min(self.timeout_ms, 1000), max_records=1)
            except KafkaError:  # a record it cannot decode: records are waiting
                continue
            if not found and reader.position(tp, timeout_ms=self.timeout_ms) >= where.end:
                nothing.add(tp)
        return nothing

    def close(self) -> None:
        for consumer in self._consumers.values():
            try:
                consumer.close(autocommit=False)
            except Exception:  # closing a broken client must not fail the check
                log.debug("closing the offsets probe failed")
        self._consumers.clear()
        if self._reader is not None:
            try:
                self._reader.close(autocommit=False)
            except Exception:  # closing a broken client must not fail the check
                log.debug("closing the offsets probe failed")
            self._reader = None


def exit_now(code: int) -> None:
    """Leave at once: a wedged consumer may never finish a graceful stop."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class StallWatch:
    """Runs the checks; `stalled` is what health endpoints read."""

    def __init__(
        self,
        *,
        group: str,
        probe: OffsetsProbe,
        detector: StallDetector,
        gauge: Any,
        interval_s: float,
        exit_grace_s: float,
        exit: Callable[[int], None] = exit_now,
    ) -> None:
        self.group = group
        self.probe = probe
        self.detector = detector
        self.gauge = gauge
        self.interval_s = interval_s
        self.exit_grace_s = exit_grace_s
        self.exit = exit
        self.stalled: frozenset[PartitionKey] = frozenset()
        self._exit_scheduled = False
        self._probe_failing = False

    @property
    def healthy(self) -> bool:
        return not self.stalled

    async def check(
        self,
        owned: Collection[PartitionKey],
        counting: Callable[[], bool],
        excused: Collection[PartitionKey] = (),
        recovering: Callable[[], Mapping[PartitionKey, Offsets] | None] = lambda: None,
    ) -> frozenset[PartitionKey]:
        """One check; `counting()` is asked before and after the probe (a rebalance may start
        while the broker is asked). While `recovering()` returns the progress of a table
        recovery (changelog partitions: offset read so far, offset to reach), that progress is
        watched instead of the committed offsets: a recovery that moves is never a stall, one
        that reads nothing while the broker answers is."""
        offsets: Mapping[PartitionKey, Offsets] | None = None
        if counting():
            try:
                offsets = await asyncio.to_thread(self.probe.offsets, self.group, list(owned))
            except ProbeFailed as exc:
                offsets = None
                if not self._probe_failing:
                    log.warning(
                        "broker did not answer the progress check; stall time is not counted",
                        extra={"reason": str(exc)},
                    )
                self._probe_failing = True
            else:
                if self._probe_failing:
                    log.info("broker answers the progress check again")
                self._probe_failing = False
            if not counting():
                offsets = None
            elif offsets is not None:
                recovery = recovering()
                if recovery is not None:
                    offsets = recovery
        stalled = self.detector.observe(offsets, excused)
        self.gauge.set(len(stalled))
        if stalled and not self._exit_scheduled:
            self.stalled = stalled
            self._exit_scheduled = True
            for topic, partition in sorted(stalled):
                assert offsets is not None
                log.error(
                    "partition stalled: records waiting and no progress; exiting for a restart",
                    extra={
                        "topic": topic,
                        "partition": partition,
                        "offset": offsets[(topic, partition)].position,
                        "count": offsets[(topic, partition)].behind,
                    },
                )
            asyncio.get_running_loop().call_later(self.exit_grace_s, self.exit, STALL_EXIT_CODE)
        return stalled

    async def run(
        self,
        owned: Callable[[], Collection[PartitionKey]],
        counting: Callable[[], bool],
        excused: Callable[[], Collection[PartitionKey]] = lambda: (),
        recovering: Callable[[], Mapping[PartitionKey, Offsets] | None] = lambda: None,
    ) -> None:
        """Check every `interval_s` until cancelled."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                await self.check(owned(), counting, excused(), recovering)
        finally:
            close = getattr(self.probe, "close", None)
            if close is not None:
                close()
