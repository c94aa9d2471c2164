"""Stall detection: a partition with records beyond a worker's position whose position has not
moved for `stall_after_s` seconds is stalled.

Pure logic: the caller reports, on each check, the committed position and the end offset of every
partition the worker owns, and whether the check counts at all. Time is counted only across checks
that count (the broker answered, the worker is not recovering its tables, not rebalancing and not
in a retry backoff), so an outage or a slow recovery never makes a worker restart itself in a loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

PartitionKey = tuple[str, int]
"""(topic, partition)."""


@dataclass(frozen=True)
class Offsets:
    """Where a consumer group stands on one partition."""

    position: int
    """The group's committed offset (the next record it will process after a restart)."""
    end: int
    """The partition's end offset (one past the last record)."""

    @property
    def behind(self) -> int:
        return max(0, self.end - self.position)


@dataclass
class _Watch:
    position: int
    since: float


class StallDetector:
    """Remembers, per partition, the position and since when it has not moved while behind."""

    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_after_s <= 0:
            raise ValueError("stall_after_s must be positive")
        self.stall_after_s = stall_after_s
        self.clock = clock
        self._watch: dict[PartitionKey, _Watch] = {}

    def observe(
        self,
        offsets: Mapping[PartitionKey, Offsets] | None,
        excused: Collection[PartitionKey] = (),
    ) -> frozenset[PartitionKey]:
        """Record one check and return the partitions stalled now.

        `offsets` is None when the check does not count for any partition (broker unreachable,
        tables recovering, rebalancing): every clock restarts. A partition in `excused` (a retry
        backoff on it) has its clock restarted too. Partitions missing from `offsets` are no longer
        owned and are forgotten.
        """
        now = self.clock()
        if offsets is None:
            for watch in self._watch.values():
                watch.since = now
            return frozenset()
        for key in list(self._watch):
            if key not in offsets:
                del self._watch[key]
        stalled: set[PartitionKey] = set()
        for key, where in offsets.items():
            if key not in self._watch:
                self._watch[key] = _Watch(where.position, now)
                continue
            watch = self._watch[key]
            if where.position != watch.position or where.behind == 0 or key in excused:
                watch.position = where.position
                watch.since = now
                continue
            if now - watch.since >= self.stall_after_s:
                stalled.add(key)
        return frozenset(stalled)
