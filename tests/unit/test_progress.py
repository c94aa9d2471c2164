"""The stall detector and the stall watch, with a fake clock and the in-memory offsets probe."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Gauge

from services.common.progress import Offsets, PartitionKey, StallDetector
from services.common.stallwatch import STALL_EXIT_CODE, MemoryOffsetsProbe, StallWatch

P0: PartitionKey = ("care.events.v1", 0)
P1: PartitionKey = ("care.events.v1", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def detector(after: float = 60.0) -> tuple[StallDetector, Clock]:
    clock = Clock()
    return StallDetector(after, clock=clock), clock


def test_a_partition_behind_that_does_not_move_stalls_after_the_timeout() -> None:
    d, clock = detector()
    assert d.observe({P0: Offsets(5, 9), P1: Offsets(3, 3)}) == frozenset()
    clock.now += 59
    assert d.observe({P0: Offsets(5, 9), P1: Offsets(3, 3)}) == frozenset()
    clock.now += 1
    assert d.observe({P0: Offsets(5, 9), P1: Offsets(3, 3)}) == {P0}


def test_a_caught_up_partition_never_stalls_however_long_it_is_quiet() -> None:
    d, clock = detector()
    for _ in range(10):
        clock.now += 100
        assert d.observe({P0: Offsets(9, 9)}) == frozenset()


def test_movement_restarts_the_clock() -> None:
    d, clock = detector()
    d.observe({P0: Offsets(5, 100)})
    clock.now += 50
    d.observe({P0: Offsets(6, 100)})
    clock.now += 50
    assert d.observe({P0: Offsets(6, 100)}) == frozenset()
    clock.now += 10
    assert d.observe({P0: Offsets(6, 100)}) == {P0}


def test_an_outage_or_a_recovery_never_counts() -> None:
    d, clock = detector()
    d.observe({P0: Offsets(5, 9)})
    for _ in range(5):  # five minutes of a broker outage or of table recovery
        clock.now += 60
        assert d.observe(None) == frozenset()
    clock.now += 59
    assert d.observe({P0: Offsets(5, 9)}) == frozenset(), "the clock restarted after the outage"
    clock.now += 1
    assert d.observe({P0: Offsets(5, 9)}) == {P0}


def test_a_partition_in_a_retry_backoff_is_excused_and_the_others_are_not() -> None:
    d, clock = detector()
    d.observe({P0: Offsets(5, 9), P1: Offsets(1, 4)})
    clock.now += 120
    assert d.observe({P0: Offsets(5, 9), P1: Offsets(1, 4)}, excused={P0}) == {P1}


def test_a_partition_no_longer_owned_is_forgotten_and_starts_afresh_when_it_comes_back() -> None:
    d, clock = detector()
    d.observe({P0: Offsets(5, 9)})
    clock.now += 30
    d.observe({P1: Offsets(0, 0)})
    clock.now += 30
    assert d.observe({P0: Offsets(5, 9)}) == frozenset()
    clock.now += 59
    assert d.observe({P0: Offsets(5, 9)}) == frozenset()
    clock.now += 1
    assert d.observe({P0: Offsets(5, 9)}) == {P0}


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall_after_s must be positive"):
        StallDetector(0)


def watch(probe: MemoryOffsetsProbe, clock: Clock, exits: list[int]) -> tuple[StallWatch, Gauge]:
    gauge = Gauge("stalled", "test", registry=CollectorRegistry())
    w = StallWatch(
        group="g",
        probe=probe,
        detector=StallDetector(10, clock=clock),
        gauge=gauge,
        interval_s=1,
        exit_grace_s=0.01,
        exit=exits.append,
    )
    return w, gauge


@pytest.mark.asyncio
async def test_the_watch_turns_unhealthy_sets_the_gauge_and_exits_once() -> None:
    probe = MemoryOffsetsProbe()
    probe.committed[P0], probe.ends[P0] = 3, 7
    clock, exits = Clock(), list[int]()
    w, gauge = watch(probe, clock, exits)
    assert await w.check({P0}, lambda: True) == frozenset()
    assert w.healthy
    clock.now += 10
    assert await w.check({P0}, lambda: True) == {P0}
    assert not w.healthy
    assert gauge._value.get() == 1
    await asyncio.sleep(0.05)
    assert exits == [STALL_EXIT_CODE]
    clock.now += 10
    await w.check({P0}, lambda: True)
    await asyncio.sleep(0.05)
    assert exits == [STALL_EXIT_CODE], "the exit is scheduled once"


@pytest.mark.asyncio
async def test_the_watch_does_not_count_while_the_broker_is_unreachable_or_not_counting() -> None:
    probe = MemoryOffsetsProbe()
    probe.committed[P0], probe.ends[P0] = 3, 7
    clock, exits = Clock(), list[int]()
    w, gauge = watch(probe, clock, exits)
    await w.check({P0}, lambda: True)
    probe.reachable = False
    clock.now += 100
    assert await w.check({P0}, lambda: True) == frozenset()
    probe.reachable = True
    clock.now += 100
    assert await w.check({P0}, lambda: False) == frozenset(), "rebalancing or recovering"
    clock.now += 5
    assert await w.check({P0}, lambda: True) == frozenset()
    assert w.healthy and exits == [] and gauge._value.get() == 0


@pytest.mark.asyncio
async def test_a_recovery_that_reads_is_never_a_stall_and_one_that_reads_nothing_is() -> None:
    probe = MemoryOffsetsProbe()
    probe.committed[P0], probe.ends[P0] = 3, 7
    clock, exits = Clock(), list[int]()
    w, _ = watch(probe, clock, exits)
    changelog: PartitionKey = ("child-state-changelog", 0)
    read = {"offset": -1}

    def recovering() -> dict[PartitionKey, Offsets]:
        return {changelog: Offsets(read["offset"], 500)}

    for _ in range(20):  # a slow recovery: a few records every check
        clock.now += 5
        read["offset"] += 3
        assert await w.check({P0}, lambda: True, recovering=recovering) == frozenset()
    clock.now += 5
    await w.check({P0}, lambda: True, recovering=recovering)
    clock.now += 10  # then nothing read for the stall timeout, the broker answering
    assert await w.check({P0}, lambda: True, recovering=recovering) == {changelog}
    assert not w.healthy
