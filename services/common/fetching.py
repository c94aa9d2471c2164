"""Getting past a record aiokafka cannot decode (services.common.unreadable says what is done
with it; this module does it with the consumer).

aiokafka (0.14, pinned) decodes a partition's batches lazily, inside `fetched_records`, and an
error there (a codec missing, a CRC failure, a header key that is not UTF-8) escapes the whole
fetch: the records it had already taken from other partitions are dropped while their positions
have moved on, and the same error comes back on every later fetch. `recover` undoes that: every
partition goes back to where it stood before the fetch; the partition that raised is then read
alone, one record at a time, up to the record that cannot be decoded.

Private parts of aiokafka read here, in one place: the fetcher's buffered results (to find the
partition whose decoding raised) and the subscription's positions.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.common.unreadable import MARK, Held, deploy_can_fix, unreadable_reason

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]

PINPOINT_BUDGET_S = 10.0
"""How long one recovery reads a partition record by record before handing over what it has."""


def positions(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """The next offset the consumer hands out, per assigned partition that has one."""
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return {}
    out: dict[TopicPartition, int] = {}
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position:
            out[tp] = int(state.position)
    return out


def raised_partitions(fetcher: Any) -> list[TopicPartition]:
    """The partitions whose buffered fetch raised while it was read: the generator decoding
    it stays attached to the buffered result, closed; one that ended normally is detached."""
    found: list[TopicPartition] = []
    for tp, result in list(getattr(fetcher, "_records", {}).items()):
        partition_records = getattr(result, "_partition_records", None)
        generator = getattr(partition_records, "_records_iterator", None)
        if generator is not None and inspect.getgeneratorstate(generator) == inspect.GEN_CLOSED:
            found.append(TopicPartition(tp.topic, tp.partition))
    return found


def stand_in(tp: TopicPartition, offset: int, exc: BaseException) -> ConsumerRecord[Any, Any]:
    """The record handed to the worker in place of one that cannot be decoded."""
    reason = unreadable_reason(exc).encode()
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=int(time.time() * 1000),
        timestamp_type=0,
        key=None,
        value=None,
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=-1,
        headers=((MARK, reason),),
    )


async def _pinpoint(consumer: AIOKafkaConsumer, tp: TopicPartition) -> tuple[list[Any], Any]:
    """Read `tp` alone, one record at a time: (the records before the one that raises, and
    (its offset, the error)) — or (records, None) if nothing raised within the budget."""
    fetcher: Any = consumer._fetcher
    good: list[Any] = []
    deadline = asyncio.get_running_loop().time() + PINPOINT_BUDGET_S
    while asyncio.get_running_loop().time() < deadline:
        try:
            got = await fetcher.fetched_records({tp}, timeout=0.5, max_records=1)
        except Exception as exc:  # the record at the position cannot be decoded
            return good, (positions(consumer).get(tp), exc)
        good.extend(got.get(tp, []))
    return good, None


async def recover(
    consumer: AIOKafkaConsumer, before: Mapping[TopicPartition, int], exc: Exception, held: Held
) -> Batch:
    """After a fetch raised `exc` while decoding: every partition back to `before` (its
    position before that fetch); a partition whose codec is missing paused and held; any other
    partition that raised read up to its bad record, which comes back as a stand-in record
    (services.common.unreadable.MARK) with the records before it. Raises `exc` again when no
    partition decoded with an error (a fetch error of another kind)."""
    culprits = raised_partitions(consumer._fetcher)
    if not culprits:
        raise exc
    for tp, offset in before.items():
        consumer.seek(tp, offset)
    await _back_to_start(consumer, [tp for tp in consumer.assignment() if tp not in before])
    out: Batch = {}
    for tp in culprits:
        if deploy_can_fix(exc):
            consumer.pause(tp)
            held.hold(tp.topic, tp.partition, before.get(tp), exc)
            continue
        good, bad = await _pinpoint(consumer, tp)
        records = list(good)
        if bad is not None:
            offset, error = bad
            if offset is not None:
                records.append(stand_in(tp, offset, error))
                consumer.seek(tp, offset + 1)
        if records:
            out[tp] = records
    return out


async def _back_to_start(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
    """Partitions that had no position when the fetch began (just assigned: their first fetch
    was that one) go back to where they start, their committed offset or else the beginning
    (every consumer here resets to the earliest offset): the fetch that raised moved them past
    records nobody was given."""
    if not partitions:
        return
    committed = {tp: await consumer.committed(tp) for tp in partitions}
    never = [tp for tp, offset in committed.items() if offset is None]
    beginning = await consumer.beginning_offsets(never) if never else {}
    for tp in partitions:
        offset = committed[tp]
        consumer.seek(tp, offset if offset is not None else beginning[tp])


def disable_codecs(names: list[str]) -> None:
    """Test hook (CAREALERT_TEST_DISABLED_CODECS): make the Kafka clients in this process
    behave as if these codec libraries were not installed."""
    import aiokafka.codec

    for name in names:
        if name not in ("gzip", "snappy", "lz4", "zstd"):
            raise ValueError(f"unknown codec {name!r}")
        setattr(aiokafka.codec, f"has_{name}", lambda: False)
