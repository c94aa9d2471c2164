"""Start the rules worker: load the policy, wait for Kafka, create topics, run faust."""

from __future__ import annotations

import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.common import logs, topics
from services.common.fetching import disable_codecs
from services.common.kafka import KafkaClient, ensure_topics, partition_counts
from services.common.stallwatch import KafkaOffsetsProbe
from services.rules.app import REKEYED_SUFFIX, TICKS_SUFFIX, build_app
from services.rules.core import Engine
from services.rules.metrics import RulesMetrics
from services.rules.policy import load_policy
from services.rules.settings import RulesSettings

log = logging.getLogger(__name__)


def events_partitions(kafka: KafkaClient) -> int:
    """The partition count of care.events.v1: the state table, the ticks and the rekeyed topics
    must match it."""
    return partition_counts(kafka, [topics.EVENTS], client_id="carealert-rules")[topics.EVENTS]


class _Worker(faust.Worker):
    service = "rules"

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        logs.configure(self.service, logging.getLevelName(level))


def store_url(settings: RulesSettings) -> str:
    if settings.rules_store.startswith("rocksdb"):
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            log.warning("rocksdict is not installed: using the memory store")
            return "memory://"
    return settings.rules_store


def run(settings: RulesSettings) -> None:
    logs.configure("rules", settings.log_level)
    if settings.test_disabled_codecs:
        disable_codecs(settings.test_disabled_codecs.split(","))
    policy = load_policy(settings.policy_dir)
    kafka = settings.connected_kafka("carealert-rules")
    partitions = events_partitions(kafka)
    ensure_topics(
        kafka,
        partitions=partitions,
        replication=settings.topic_replication,
        names=[settings.rules_app_id + TICKS_SUFFIX, settings.rules_app_id + REKEYED_SUFFIX],
    )
    settings = settings.model_copy(update={"rules_store": store_url(settings)})
    settings.rules_data_dir.mkdir(parents=True, exist_ok=True)
    probe = KafkaOffsetsProbe(kafka.kafka_python(client_id="carealert-rules-stallwatch"))
    app = build_app(settings, Engine(policy), RulesMetrics(CollectorRegistry()), partitions, probe)
    log.info(
        "rules worker starting",
        extra={"port": settings.rules_port, "count": partitions, "status": policy.version[:12]},
    )
    worker_kwargs: dict[str, Any] = {"loglevel": settings.log_level.lower(), "quiet": True}
    _Worker(app, **worker_kwargs).execute_from_commandline()
