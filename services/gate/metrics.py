"""The gate's metrics, declared once; a registry is passed in so tests read a fresh one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.gate.tenancy import REASONS


class GateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.forwarded = Counter(
            "carealert_gate_forwarded_total",
            "Records of agency input topics forwarded to care.events.v1 (acknowledged by Kafka).",
            registry=registry,
        )
        self.dlq = Counter(
            "carealert_gate_dlq_writes_total",
            "Records of agency input topics sent to care.events.dlq, by reason code.",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:
            self.dlq.labels(reason)  # every reason is exported from the start, at 0
        self.batch_retries = Counter(
            "carealert_gate_batch_retries_total",
            "Batches written again after Kafka refused a write for a passing reason (nothing is"
            " committed until the whole batch is acknowledged).",
            registry=registry,
        )
        self.stalled = Gauge(
            "carealert_gate_stalled_partitions",
            "Owned partitions with records waiting whose position has not moved for the stall"
            " timeout (the gate exits for a restart when this is above 0).",
            registry=registry,
        )
        self.unreadable = Gauge(
            "carealert_gate_unreadable_partitions",
            "Partitions the gate holds because a record on them cannot be read (a codec not"
            " installed).",
            registry=registry,
        )
