"""faust's aiokafka transport, reading committed records only and getting past (never dying on)
a record it cannot decode (services.common.unreadable, services.common.fetching).

faust asks Kafka for `isolation_level=read_committed` only when the app itself runs exactly-once
transactions. The rules worker does not (its escalations are idempotent by id, and transactions
would put a commit round trip on every batch), but an agency's transactional producer must not
page anyone with a record it aborted. This transport is faust's own, with the worker consumer
created as faust would create it for a transactional app; nothing else changes.

faust finds it through the `faust.transports` entry point `carealert` (pyproject.toml), so the
broker URL scheme is `carealert://host:port`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from services.common.fetching import positions, recover
from services.common.unreadable import Held


class RulesApp(faust.App):
    """faust's App, with the partitions its consumer holds because their records need a codec
    the worker lacks (services.common.unreadable): the consumer thread holds them, the
    worker's health and stall watch read them."""

    held: Held

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = Held("rules")


class CommittedOnlyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        # faust reads `in_transaction` here only to choose the isolation level; elsewhere it
        # means "commit through the producer's transaction", which stays off.
        consumer: Any = self.consumer
        was = consumer.in_transaction
        consumer.in_transaction = True
        try:
            created: aiokafka.AIOKafkaConsumer = super()._create_worker_consumer(transport)
        finally:
            consumer.in_transaction = was
        return created

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        before = positions(consumer)
        try:
            return await super()._fetch_records(
                consumer, active_partitions, timeout=timeout, max_records=max_records
            )
        except Exception as exc:  # recover() raises it again unless decoding a record raised
            app: RulesApp = self.app  # type: ignore[assignment]  # built by build_app
            return await recover(consumer, before, exc, app.held)


class CommittedOnlyConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return CommittedOnlyConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = CommittedOnlyConsumer
