"""Every Grafana query names a metric a service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.gate.metrics import GateMetrics
from services.ingest.metrics import IngestMetrics
from services.notify.metrics import NotifyMetrics
from services.rules.metrics import RulesMetrics

ROOT = Path(__file__).resolve().parents[2]


def exported_names() -> set[str]:
    names: set[str] = set()
    for cls in (IngestMetrics, RulesMetrics, NotifyMetrics, GateMetrics):
        registry = CollectorRegistry()
        cls(registry)
        for family in registry.collect():
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
    return names


def test_dashboard_queries_use_existing_metrics() -> None:
    dash = json.loads((ROOT / "deploy" / "grafana" / "carealert-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\bcarealert_[a-z0-9_]+", e)}
    assert used, "no carealert metric in the dashboard"
    assert used - exported_names() == set()


def test_dashboard_covers_the_required_views() -> None:
    text = (ROOT / "deploy" / "grafana" / "carealert-dashboard.json").read_text()
    for metric in (
        "carealert_ingest_events_accepted_total",
        "carealert_rules_escalations_total",
        "carealert_notify_deliveries_total",
        "carealert_notify_delivery_latency_seconds_bucket",
        "carealert_rules_consumer_lag_messages",
        "carealert_notify_unacknowledged_past_due",
    ):
        assert metric in text


def test_alert_rules_use_existing_metrics() -> None:
    text = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\bcarealert_[a-z0-9_]+", text)) - {"carealert_"}
    assert used - exported_names() == set()


def test_metric_names_follow_the_convention() -> None:
    for name in exported_names():
        assert re.fullmatch(r"carealert_(ingest|rules|notify|gate)_[a-z0-9_]+", name), name
