"""Records a worker cannot read: never a crash loop, never a silent skip.

A Kafka client raises, for a whole fetch, when one record batch in it cannot be decoded: its
compression codec is not installed (`UnsupportedCodecError`, fixed by a deploy) or its bytes fail
their CRC (`CorruptRecordException`: disk or network corruption the broker's replicas or an
operator must fix; the broker checks CRCs when it accepts a write). Left alone, the worker dies on
it and dies again on every restart, and alerting stops for every partition it owns.

Instead the worker finds the partition whose batch raised, pauses it (it is *held*), and reads
the others again from just after the last record it took from them. The records of a held
partition stay where they are (nothing is skipped, nothing committed past them); the worker turns
unready, counts held partitions on `carealert_<service>_unreadable_partitions`, logs which
partition, offset and why, and the CarealertUnreadableRecords alert fires. A held partition is
excused from stall detection (a restart cannot fix it). Once the codec is installed or the
partition repaired, the restarted worker reads on from the committed offset.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError

from services.common.progress import PartitionKey

log = logging.getLogger(__name__)

UNREADABLE: tuple[type[Exception], ...] = (UnsupportedCodecError, CorruptRecordException)
"""What a Kafka client raises for a record batch it cannot decode."""


def reason_of(exc: BaseException) -> str:
    """`codec` (a deploy can fix it) or `corrupt` (the partition's data must be repaired)."""
    return "codec" if isinstance(exc, UnsupportedCodecError) else "corrupt"


def raised_partitions(fetcher: Any) -> list[Any]:
    """The partitions whose buffered fetch raised while it was read.

    aiokafka (0.14, pinned) raises out of `fetched_records` from the generator that decodes one
    partition's batches; that generator stays attached to the partition's buffered result,
    closed, until the result is dropped. A generator that ended normally is detached."""
    found: list[Any] = []
    for tp, result in list(getattr(fetcher, "_records", {}).items()):
        partition_records = getattr(result, "_partition_records", None)
        generator = getattr(partition_records, "_records_iterator", None)
        if generator is not None and inspect.getgeneratorstate(generator) == inspect.GEN_CLOSED:
            found.append(tp)
    return found


class Taken:
    """The last offset a worker took from each partition in the current consumer generation:
    where to read on after a fetch that raised dropped what it had taken from other partitions
    (their positions had already moved on)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], tuple[int, int]] = {}

    def note(self, consumer: AIOKafkaConsumer, batch: Mapping[Any, list[Any]]) -> None:
        generation = _generation(consumer)
        for tp, records in batch.items():
            if records:
                self._last[(tp.topic, tp.partition)] = (generation, records[-1].offset)

    def last(self, consumer: AIOKafkaConsumer, topic: str, partition: int) -> int | None:
        """None if nothing was taken since the partition was (re)assigned."""
        generation, offset = self._last.get((topic, partition), (-2, -1))
        return offset if generation == _generation(consumer) else None


def _generation(consumer: AIOKafkaConsumer) -> int:
    """The group generation (a partition assigned anew starts from its committed offset)."""
    return int(getattr(consumer._coordinator, "generation", -1))


async def hold_unreadable(
    consumer: AIOKafkaConsumer, taken: Taken, held: Held, exc: Exception
) -> None:
    """After a fetch raised one of UNREADABLE: pause and hold the partitions that raised, and
    rewind every other partition of the group's topics to just after the last record taken
    from it (or to its committed offset). Raises `exc` again when no partition can be blamed
    (the worker must not go on then)."""
    culprits = raised_partitions(consumer._fetcher)
    if not culprits:
        raise exc
    group_topics = consumer.subscription()
    for tp in consumer.assignment():
        if tp.topic not in group_topics:
            continue  # assigned by hand (e.g. a faust changelog): not ours to move
        last = taken.last(consumer, tp.topic, tp.partition)
        if last is None:
            await consumer.seek_to_committed(tp)
        else:
            consumer.seek(tp, last + 1)
    for tp in culprits:
        client_tp = TopicPartition(tp.topic, tp.partition)
        consumer.pause(client_tp)
        held.hold(tp.topic, tp.partition, await consumer.position(client_tp), exc)


class Held:
    """The partitions a worker holds (pure bookkeeping; the caller pauses them)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.reasons: dict[PartitionKey, str] = {}

    def hold(self, topic: str, partition: int, offset: int | None, exc: BaseException) -> None:
        key = (topic, partition)
        reason = reason_of(exc)
        if self.reasons.get(key) == reason:
            return  # the client raised again after a resume: already held, already said
        self.reasons[key] = reason
        log.error(
            "a record on this partition cannot be read; partition held, worker unready"
            if reason == "codec"
            else "a record batch on this partition is corrupt; partition held, worker unready",
            extra={
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "reason": "codec not installed" if reason == "codec" else "CRC check failed",
            },
        )

    def keep_only(self, owned: Collection[PartitionKey]) -> None:
        """Forget partitions this worker no longer owns (their new owner holds them)."""
        for key in [k for k in self.reasons if k not in owned]:
            del self.reasons[key]

    @property
    def partitions(self) -> frozenset[PartitionKey]:
        return frozenset(self.reasons)

    def readiness(self) -> tuple[bool, str] | None:
        """None while nothing is held; else a not-ready answer for /readyz (no record data)."""
        if not self.reasons:
            return None
        return False, (
            f"not ready: {len(self.reasons)} partition(s) hold a record this worker cannot read"
            " (see the logs and carealert_" + self.service + "_unreadable_partitions)"
        )


def disable_codecs(names: Collection[str]) -> None:
    """Test hook (CAREALERT_TEST_DISABLED_CODECS): make the Kafka clients in this process
    behave as if these codec libraries were not installed."""
    import aiokafka.codec

    for name in names:
        if name not in ("gzip", "snappy", "lz4", "zstd"):
            raise ValueError(f"unknown codec {name!r}")
        setattr(aiokafka.codec, f"has_{name}", lambda: False)
