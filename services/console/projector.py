"""The edge: read the topics and write the read model, exactly once.

Partitions are assigned by hand (no consumer group: the database, not Kafka, holds the
position). Each starts at the `next_offset` stored in `projection_offsets`, or at the
beginning. Only committed records are read (`read_committed`). Each polled batch is projected
(services.console.projection) and written with its partitions' new offsets in ONE transaction
(services.console.store): after a crash the projector resumes after the last batch written, so
no row is lost and none applied twice. A record that cannot be decoded or is invalid is skipped
and counted; its offset advances with the batch, so it never stalls a partition. Logs name
topic, partition, offset and a reason code, never a record's content.

care.silences.v1 is notify's (it creates it, compacted): while it does not exist the projector
reads the other topics and looks for it again every LOOK_AGAIN_S seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from services.common import topics as contract
from services.common.kafka import KafkaClient, KafkaUnavailable, retry_delay_s
from services.console.metrics import ConsoleMetrics
from services.console.projection import TOPICS, Unprojectable, Write, project
from services.console.store import OffsetsMoved, load_offsets, write_batch

log = logging.getLogger(__name__)
CLIENT_ID = "carealert-console"
MAX_DB_ATTEMPTS = 12  # about four minutes of backoff before giving up on the database
# Topics another service creates: the projector starts without them and looks again.
LATE_TOPICS: tuple[str, ...] = (contract.SILENCES,)
LOOK_AGAIN_S = 30.0


@dataclass(frozen=True)
class Message:
    """One Kafka record as the projector needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass
class Batch:
    """What one batch writes: its upserts, the next offset per partition, what it skipped."""

    upserts: list[Write] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    projected: dict[str, int] = field(default_factory=dict)


def project_batch(messages: Iterable[Message]) -> Batch:
    """Project `messages` (in partition order) into one batch. Pure."""
    batch = Batch()
    for msg in messages:
        now = (
            datetime.fromtimestamp(msg.timestamp_ms / 1000, UTC)
            if msg.timestamp_ms is not None and msg.timestamp_ms >= 0
            else None
        )
        try:
            batch.upserts.extend(project(msg.topic, msg.key, msg.value, now))
            batch.projected[msg.topic] = batch.projected.get(msg.topic, 0) + 1
        except Unprojectable as exc:
            batch.skipped[exc.reason] = batch.skipped.get(exc.reason, 0) + 1
            log.warning(
                "skipped a record the read model cannot take: %s at %s[%d]@%d",
                exc.reason,
                msg.topic,
                msg.partition,
                msg.offset,
            )
        tp = (msg.topic, msg.partition)
        batch.offsets[tp] = max(batch.offsets.get(tp, 0), msg.offset + 1)
    return batch


class Source(Protocol):
    """Where records come from: Kafka (`KafkaSource`), or a list in tests."""

    def start(self, positions: Mapping[tuple[str, int], int]) -> None: ...

    def poll(self, timeout_s: float, max_records: int) -> Sequence[Message]: ...

    def close(self) -> None: ...


class KafkaSource:
    """The topics' partitions, assigned by hand, committed records only."""

    def __init__(
        self,
        kafka: KafkaClient,
        topics: Sequence[str] = TOPICS,
        late: Sequence[str] = LATE_TOPICS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = topics
        self.late = late
        self.clock = clock
        self.consumer = KafkaConsumer(
            **kafka.kafka_python(
                client_id=CLIENT_ID,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
            )
        )
        self.assigned: list[Any] = []
        self.missing: list[str] = []  # late topics not found yet
        self.positions: dict[tuple[str, int], int] = {}
        self.looked_at = 0.0

    def start(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Assign every partition of the topics; seek each to its stored position or the
        beginning. Raises KafkaUnavailable for a topic it cannot see (missing, or no ACL),
        unless it is one of the `late` topics: that one is looked for again while polling."""
        self.positions = dict(positions)
        assigned: list[Any] = []
        missing: list[str] = []
        for topic in self.topics:
            partitions = self.consumer.partitions_for_topic(topic)
            if not partitions:
                if topic in self.late:
                    missing.append(topic)
                    continue
                raise KafkaUnavailable(f"the console projector cannot see {topic}")
            assigned.extend(TopicPartition(topic, p) for p in sorted(partitions))
        self.assigned, self.missing = assigned, missing
        self._assign(assigned)
        self.looked_at = self.clock()
        log.info("reading %d partitions of %s", len(assigned), ", ".join(self.topics))
        if missing:
            log.info("not created yet, looked for again: %s", ", ".join(missing))

    def _assign(self, new: Sequence[Any]) -> None:
        """Assign `self.assigned` (partitions assigned before keep their position) and seek
        the `new` ones to their stored position or the beginning."""
        self.consumer.assign(self.assigned)
        for tp in new:
            stored = self.positions.get((tp.topic, tp.partition))
            if stored is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored)

    def _look_again(self) -> None:
        self.looked_at = self.clock()
        found: list[Any] = []
        for topic in list(self.missing):
            partitions = self.consumer.partitions_for_topic(topic)
            if partitions:
                found.extend(TopicPartition(topic, p) for p in sorted(partitions))
                self.missing.remove(topic)
                log.info("reading %d partitions of %s", len(partitions), topic)
        if found:
            self.assigned = [*self.assigned, *found]
            self._assign(found)

    def poll(self, timeout_s: float, max_records: int) -> Sequence[Message]:
        if self.missing and self.clock() - self.looked_at >= LOOK_AGAIN_S:
            self._look_again()
        polled = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            Message(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
            for records in polled.values()
            for r in records
        ]

    def close(self) -> None:
        self.consumer.close()


class Projector:
    """Polls `source` and writes each batch to `engine` with its offsets, until `stop` is set."""

    def __init__(
        self,
        source: Source,
        engine: Engine,
        metrics: ConsoleMetrics,
        *,
        batch_max: int = 500,
        poll_s: float = 0.5,
    ) -> None:
        self.source = source
        self.engine = engine
        self.metrics = metrics
        self.batch_max = batch_max
        self.poll_s = poll_s
        self.started = False  # positions read and partitions assigned: projecting
        self.stop = threading.Event()
        # The stored offset of each partition as this projector last read or wrote it.
        self.positions: dict[tuple[str, int], int] = {}

    def run(self, stop: threading.Event) -> None:
        self.stop = stop
        self._start()
        self.started = True
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.source.close()

    def _start(self) -> None:
        self.positions = load_offsets(self.engine)
        self.source.start(self.positions)

    def step(self) -> int:
        """One poll, one transaction. Returns how many records it consumed. Raises what the
        database raises (nothing of the batch is written; the process exits and starts again
        from the stored offsets)."""
        messages = self.source.poll(self.poll_s, self.batch_max)
        if not messages:
            return 0
        batch = project_batch(messages)
        expected = {tp: self.positions.get(tp) for tp in batch.offsets}
        attempt = 0
        while True:
            attempt += 1
            try:
                write_batch(self.engine, batch.upserts, batch.offsets, expected)
                break
            except OffsetsMoved:
                # A rebuild or a second projector wrote meanwhile: start over from the database.
                log.warning("the read model's offsets moved; reading them again")
                self._start()
                return 0
            except (OperationalError, InterfaceError) as exc:
                # The database is away (restarting, unreachable): the batch waits, nothing
                # skipped. An error that does not clear ends the process (its supervisor
                # restarts it, and the restarts show) instead of hiding behind a healthy /healthz.
                if attempt >= MAX_DB_ATTEMPTS:
                    raise
                self.metrics.retries.inc()
                log.warning(
                    "the read model's database refused a batch; trying again",
                    extra={"reason": type(exc).__name__, "attempt": attempt},
                )
                if self.stop.wait(retry_delay_s(attempt)):
                    return 0  # stopping: the batch is read again at the next start
        self.positions.update(batch.offsets)
        for topic, count in batch.projected.items():
            self.metrics.projected.labels(topic).inc(count)
        for reason, count in batch.skipped.items():
            self.metrics.skipped.labels(reason).inc(count)
        return len(messages)
