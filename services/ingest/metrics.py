"""Ingest metrics, declared once. A registry is passed in so each test gets a fresh one."""

from prometheus_client import CollectorRegistry, Counter, Histogram

# Bounded label values only: event types and fixed reason codes, never ids.
REJECT_REASONS = (
    "unauthorized",
    "forbidden",
    "invalid",
    "too_deep",
    "too_large",
    "unsupported_media_type",
    "unsupported_encoding",
    "corrupt_encoding",
    "unavailable",
)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_accepted = Counter(
            "carealert_ingest_events_accepted_total",
            "Events acknowledged by Kafka and answered 202.",
            ["event_type"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "carealert_ingest_events_rejected_total",
            "Requests refused, by reason (one count per request).",
            ["reason"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "carealert_ingest_publish_seconds",
            "Time from handing events to the producer to Kafka's ack.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
