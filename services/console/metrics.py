"""The console's metrics (its projector and its pages), declared once; a registry is passed in
so tests read a fresh one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from services.console.projection import REASONS

SIGN_IN_OUTCOMES = ("ok", "wrong", "locked", "refused")


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
        self.sign_ins = Counter(
            "carealert_console_sign_ins_total",
            "Sign-in attempts by outcome: ok, wrong (password, person or agency: one answer),"
            " locked (refused by the lockout), refused (the form's token or origin).",
            ["outcome"],
            registry=registry,
        )
        self.audit_failures = Counter(
            "carealert_console_audit_failures_total",
            "Audit records Kafka did not take: the page or action was refused (503).",
            registry=registry,
        )
        for outcome in SIGN_IN_OUTCOMES:
            self.sign_ins.labels(outcome)
        for reason in REASONS:
            self.skipped.labels(reason)  # every reason is exported from the start, at 0
