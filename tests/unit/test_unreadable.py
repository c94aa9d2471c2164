"""Holding partitions with unreadable records: the pure parts."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError

from services.common.fetching import raised_partitions
from services.common.unreadable import Held, reason_of


def test_reasons_say_what_fixes_them() -> None:
    assert reason_of(UnsupportedCodecError("no snappy")) == "codec"
    assert reason_of(CorruptRecordException("bad crc")) == "corrupt"


def test_held_partitions_make_the_worker_unready_until_they_move_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    held = Held("rules")
    assert held.readiness() is None
    held.hold("care.events.v1", 2, 17, UnsupportedCodecError("no snappy"))
    held.hold("care.events.v1", 2, 17, UnsupportedCodecError("no snappy"))  # said once
    assert len([r for r in caplog.records if "partition held" in r.getMessage()]) == 1
    ready = held.readiness()
    assert ready is not None and ready[0] is False and "1 partition(s)" in ready[1]
    assert held.partitions == {("care.events.v1", 2)}
    held.keep_only({("care.events.v1", 0)})  # rebalanced away: its new owner holds it
    assert held.readiness() is None


def _batches(fail: bool) -> Iterator[int]:
    yield 1
    if fail:
        raise UnsupportedCodecError("no snappy")


def _buffered(generator: Iterator[int] | None) -> SimpleNamespace:
    return SimpleNamespace(_partition_records=SimpleNamespace(_records_iterator=generator))


def test_the_partition_whose_batches_raised_is_found() -> None:
    raised, suspended, fresh = _batches(True), _batches(False), _batches(False)
    next(raised)
    with pytest.raises(UnsupportedCodecError):
        next(raised)
    next(suspended)
    fetcher = SimpleNamespace(
        _records={
            TopicPartition("t", 0): _buffered(suspended),
            TopicPartition("t", 1): _buffered(raised),
            TopicPartition("t", 2): _buffered(fresh),
            TopicPartition("t", 3): _buffered(None),  # drained
            TopicPartition("t", 4): SimpleNamespace(),  # a fetch error, not records
        }
    )
    assert raised_partitions(fetcher) == [TopicPartition("t", 1)]
