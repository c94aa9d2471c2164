"""Notify metrics, declared once; a registry is passed in so tests read a fresh one."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "carealert_notify_deliveries_total",
            "Delivery attempts by channel, outcome and reason code.",
            ["channel", "status", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "carealert_notify_delivery_latency_seconds",
            "From the escalation's created_at to a successful delivery.",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.end_to_end = Histogram(
            "carealert_notify_end_to_end_latency_seconds",
            "From Kafka accepting the triggering event to the first delivery of its escalation.",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.open = Gauge(
            "carealert_notify_open_escalations",
            "Firing escalations not yet resolved.",
            registry=registry,
        )
        self.unacked_past_due = Gauge(
            "carealert_notify_unacknowledged_past_due",
            "Open, unacknowledged escalations whose due time has passed.",
            registry=registry,
        )
        self.lag = Gauge(
            "carealert_notify_consumer_lag_messages",
            "Escalations behind the end of each assigned partition, after the last batch.",
            ["topic", "partition"],
            registry=registry,
        )
        self.acks = Counter(
            "carealert_notify_acks_total", "Acknowledgements accepted.", registry=registry
        )
        self.stalled = Gauge(
            "carealert_notify_stalled_partitions",
            "Owned partitions with escalations waiting whose committed position has not moved for"
            " the stall timeout (the worker exits for a restart when this is above 0).",
            registry=registry,
        )
        self.unreadable = Gauge(
            "carealert_notify_unreadable_partitions",
            "Partitions this worker holds because a record on them cannot be read (a codec not"
            " installed, a corrupt batch); their escalations are not delivered until it is fixed.",
            registry=registry,
        )
        self.canary_last = Gauge(
            "carealert_notify_canary_last_delivered_timestamp_seconds",
            "When the last canary came back through ingest, rules and notify (Unix time; set to"
            " the start time when canaries are on).",
            registry=registry,
        )
        self.canary_interval = Gauge(
            "carealert_notify_canary_interval_seconds",
            "How often a canary is sent (0: canaries are off).",
            registry=registry,
        )
        self.canary_round_trip = Gauge(
            "carealert_notify_canary_round_trip_seconds",
            "From Kafka accepting the last canary event to its escalation reaching notify.",
            registry=registry,
        )
        self.canaries_sent = Counter(
            "carealert_notify_canaries_sent_total",
            "Canary events posted to ingest, by outcome (accepted, refused, unreachable).",
            ["outcome"],
            registry=registry,
        )
        self.ledger_unreadable = Counter(
            "carealert_notify_ledger_unreadable_total",
            "Records of notify's own topics (sent-log, open escalations, acks) it could not "
            "read and skipped, by topic kind.",
            ["kind"],
            registry=registry,
        )
        self.dlq = Counter(
            "carealert_notify_dlq_writes_total",
            "Escalation records notify can never handle, sent to care.escalations.dlq, by reason.",
            ["reason"],
            registry=registry,
        )
