"""The console projector's metrics, declared once; a registry is passed in so tests read a
fresh one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from services.console.projection import REASONS


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.projected = Counter(
            "carealert_console_records_projected_total",
            "Records written to the read model (with their offsets, in one transaction).",
            ["topic"],
            registry=registry,
        )
        self.skipped = Counter(
            "carealert_console_records_skipped_total",
            "Records the read model cannot take, by reason code; their offsets still advance.",
            ["reason"],
            registry=registry,
        )
        self.retries = Counter(
            "carealert_console_batch_retries_total",
            "Batches the database refused (away, restarting) and that were tried again.",
            registry=registry,
        )
        for reason in REASONS:
            self.skipped.labels(reason)  # every reason is exported from the start, at 0
