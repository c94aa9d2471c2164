"""Rules metrics, declared once; a registry is passed in so tests read a fresh one."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# DLQ reasons are fixed codes (the detailed reason goes in the DLQ record's header).
DLQ_REASONS = (
    "undecodable",
    "invalid_event",
    "key_mismatch",
    "conflicting_duplicate",
    "internal_error",
    "too_large",
)


class RulesMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "carealert_rules_events_processed_total",
            "Events evaluated, by event type (duplicates included).",
            ["event_type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "carealert_rules_events_duplicate_total",
            "Events whose event_id had already been seen for the child (no effect).",
            registry=registry,
        )
        self.unreadable = Gauge(
            "carealert_rules_unreadable_partitions",
            "Partitions this worker holds because a record on them cannot be read (a codec not"
            " installed, a corrupt batch); their children get no alerts until it is fixed.",
            registry=registry,
        )
        self.rekeyed = Counter(
            "carealert_rules_events_rekeyed_total",
            "Events a producer put on another partition than their key's (not Java's murmur2"
            " partitioner), forwarded to the partition the key belongs on.",
            registry=registry,
        )
        self.dlq = Counter(
            "carealert_rules_dlq_writes_total",
            "Messages sent to care.events.dlq, by reason code.",
            ["reason"],
            registry=registry,
        )
        self.escalations = Counter(
            "carealert_rules_escalations_total",
            "Escalations emitted, by rule, severity and status.",
            ["rule_id", "severity", "status"],
            registry=registry,
        )
        self.evaluate_seconds = Histogram(
            "carealert_rules_evaluate_seconds",
            "Time to evaluate one input (decode state, rules, encode state).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=registry,
        )
        self.deadlines_tracked = Gauge(
            "carealert_rules_deadlines_tracked",
            "Children with a pending deadline on this worker's partitions.",
            registry=registry,
        )
        self.lag = Gauge(
            "carealert_rules_consumer_lag_messages",
            "Messages behind the end of each assigned partition, after the last batch.",
            ["topic", "partition"],
            registry=registry,
        )
        self.stalled = Gauge(
            "carealert_rules_stalled_partitions",
            "Owned partitions with records waiting whose position has not moved for the stall"
            " timeout (the worker exits for a restart when this is above 0).",
            registry=registry,
        )
        self.inputs_too_large = Counter(
            "carealert_rules_inputs_too_large_total",
            "Inputs not applied because what they would make rules write is larger than Kafka"
            " takes (measured before writing, or refused by Kafka), by input: event"
            " (dead-lettered too_large), tick (tried again at the next tick) or canary.",
            ["input"],
            registry=registry,
        )
        self.duties_forgotten = Counter(
            "carealert_rules_duties_forgotten_total",
            "Live duties (an escalation whose overdue step had not fired, a rule waiting to"
            " fire) a child's state dropped to stay within its bounds: they will not fire.",
            registry=registry,
        )
        self.batch_retries = Counter(
            "carealert_rules_batch_retries_total",
            "Batches tried again in place after Kafka refused a write (nothing is acknowledged"
            " until the whole batch is written).",
            registry=registry,
        )
