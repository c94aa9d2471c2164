"""The ingest HTTP layer with an in-memory sink: status codes, bodies, all-or-nothing batches.
The same paths run against the real broker in tests/integration/test_ingest.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.ingest.app import create_app
from services.ingest.keys import ApiKeys, ApiKeysInvalid, hash_key
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from services.ingest.sink import MemoryEventSink
from tests.support import make_event, missing_opened

KEY = "test-key-demo"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def sink() -> MemoryEventSink:
    return MemoryEventSink()


@pytest.fixture
def metrics() -> IngestMetrics:
    return IngestMetrics(CollectorRegistry())


@pytest.fixture
def client(sink: MemoryEventSink, metrics: IngestMetrics) -> TestClient:
    keys = ApiKeys({hash_key(KEY): "demo-agency", hash_key("other"): "other-agency"})
    settings = IngestSettings(max_body_bytes=64 * 1024, max_batch_events=5)
    return TestClient(create_app(settings, keys, sink, metrics))


def post(client: TestClient, path: str, body: Any, headers: dict[str, str] = AUTH) -> Any:
    return client.post(
        path, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


def test_accepts_valid_event(
    client: TestClient, sink: MemoryEventSink, metrics: IngestMetrics
) -> None:
    event = missing_opened(child_id="C-1")
    r = post(client, "/v1/events", event)
    assert r.status_code == 202
    assert r.json() == {"event_id": event["event_id"], "status": "accepted"}
    assert [k for k, _ in sink.published] == ["demo-agency:C-1"]
    assert json.loads(sink.published[0][1])["event_id"] == event["event_id"]
    assert (
        metrics.registry.get_sample_value(
            "carealert_ingest_events_accepted_total", {"event_type": "missing.opened"}
        )
        == 1.0
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong"},
    ],
)
def test_missing_or_unknown_key_is_401(
    client: TestClient, sink: MemoryEventSink, headers: dict[str, str]
) -> None:
    r = post(client, "/v1/events", missing_opened(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "API key" in r.json()["detail"]
    assert sink.published == []


def test_other_agencys_event_is_403(client: TestClient, sink: MemoryEventSink) -> None:
    event = missing_opened()
    event["agency_id"] = "other-agency"
    r = post(client, "/v1/events", event)
    assert r.status_code == 403
    assert r.json()["errors"] == [
        {"index": 0, "field": "agency_id", "problem": "not this key's agency"}
    ]
    assert sink.published == []


def test_invalid_event_is_422_naming_the_field(client: TestClient, sink: MemoryEventSink) -> None:
    event = missing_opened()
    del event["payload"]["episode_id"]
    r = post(client, "/v1/events", event)
    assert r.status_code == 422
    assert r.json() == {
        "detail": "the event is not valid",
        "errors": [{"field": "payload.episode_id", "problem": "Field required", "type": "missing"}],
    }
    assert sink.published == []


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post(
        "/v1/events", content=b'{"a":', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "(root)"


def test_wrong_content_type_is_415(client: TestClient) -> None:
    r = client.post(
        "/v1/events",
        content=json.dumps(missing_opened()),
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert r.status_code == 415


def test_body_over_limit_is_413(client: TestClient, sink: MemoryEventSink) -> None:
    big = missing_opened()
    big["payload"]["description"] = {"name": "x", "physical_description": "y" * 4000}
    body = {"events": [big] * 20}
    r = post(client, "/v1/events:batch", body)
    assert r.status_code == 413
    assert sink.published == []


def test_body_over_limit_without_content_length_is_413(
    client: TestClient, sink: MemoryEventSink
) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024

    r = client.post(
        "/v1/events", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert sink.published == []


def test_batch_accepts_all(client: TestClient, sink: MemoryEventSink) -> None:
    events = [missing_opened(child_id=f"C-{i}") for i in range(3)]
    r = post(client, "/v1/events:batch", {"events": events})
    assert r.status_code == 202
    assert r.json() == {
        "accepted": 3,
        "results": [{"event_id": e["event_id"], "status": "accepted"} for e in events],
    }
    assert [k for k, _ in sink.published] == [
        "demo-agency:C-0",
        "demo-agency:C-1",
        "demo-agency:C-2",
    ]


def test_batch_with_bad_events_publishes_nothing(client: TestClient, sink: MemoryEventSink) -> None:
    events = [missing_opened() for _ in range(4)]
    del events[1]["payload"]["circumstances"]
    events[3]["jurisdiction"]["state"] = "XX"
    r = post(client, "/v1/events:batch", {"events": events})
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [
        (1, "payload.circumstances"),
        (3, "jurisdiction.state"),
    ]
    assert sink.published == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"events": []}, "must hold 1 to 5 events"),
        (
            {
                "events": [
                    make_event("trafficking.law_enforcement_reported", {"report_number": "r"})
                ]
                * 6
            },
            "must hold 1 to 5 events",
        ),
        ({"events": {}}, "must be the only field, a list"),
        ({"events": [], "more": 1}, "must be the only field, a list"),
        ([], "must be the only field, a list"),
    ],
)
def test_batch_shape_errors(client: TestClient, body: Any, problem: str) -> None:
    r = post(client, "/v1/events:batch", body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "events"
    assert r.json()["errors"][0]["problem"] == problem


def test_batch_with_other_agency_is_403_and_nothing_published(
    client: TestClient, sink: MemoryEventSink
) -> None:
    events = [missing_opened(), missing_opened()]
    events[1]["agency_id"] = "other-agency"
    r = post(client, "/v1/events:batch", {"events": events})
    assert r.status_code == 403
    assert r.json()["errors"][0]["index"] == 1
    assert sink.published == []


def test_unavailable_sink_is_503_with_retry_after(
    client: TestClient, sink: MemoryEventSink, metrics: IngestMetrics
) -> None:
    sink.available = False
    r = post(client, "/v1/events", missing_opened())
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert (
        metrics.registry.get_sample_value(
            "carealert_ingest_events_rejected_total", {"reason": "unavailable"}
        )
        == 1.0
    )
    assert client.get("/readyz").status_code == 503


def test_health_ready_metrics_openapi(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert "carealert_ingest_events_accepted_total" in client.get("/metrics").text
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Event"}
    assert "MissingOpened" in spec["components"]["schemas"]
    assert "/v1/events:batch" in spec["paths"]


def test_keys_file_loads_and_rejects_bad_entries(tmp_path: Path) -> None:
    good = tmp_path / "keys.yaml"
    good.write_text(f"keys:\n  - agency_id: a-1\n    sha256: {hash_key('k')}\n")
    assert ApiKeys.load(good).agency_for("k") == "a-1"
    assert ApiKeys.load(good).agency_for("nope") is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("keys:\n  - agency_id: a-1\n    sha256: plaintext-key\n")
    with pytest.raises(
        ApiKeysInvalid, match=r"bad.yaml: keys.0.sha256: String should match pattern"
    ):
        ApiKeys.load(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        f"keys:\n  - agency_id: a-1\n    sha256: {hash_key('k')}\n"
        f"  - agency_id: a-2\n    sha256: {hash_key('k')}\n"
    )
    with pytest.raises(ApiKeysInvalid, match=r"dup.yaml: keys.1.sha256: duplicate key hash"):
        ApiKeys.load(dup)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events:batch"])
def test_json_nested_too_deep_is_422_on_both_endpoints_and_counted(
    client: TestClient, sink: MemoryEventSink, metrics: IngestMetrics, path: str
) -> None:
    nested = b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = client.post(path, content=nested, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json() == {
        "detail": "the body is nested too deeply",
        "errors": [
            {
                "field": "(root)",
                "problem": "JSON nested deeper than 32 levels",
                "type": "json_too_deep",
            }
        ],
    }
    assert sink.published == []
    assert (
        metrics.registry.get_sample_value(
            "carealert_ingest_events_rejected_total", {"reason": "too_deep"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("0001-01-01T00:00:00Z", "must not be before 1900"),
        ("9999-12-31T00:00:00Z", "must not be more than 1 hour in the future"),
    ],
)
def test_implausible_timestamps_are_422_not_accepted(
    client: TestClient, sink: MemoryEventSink, when: str, problem: str
) -> None:
    event = missing_opened()
    event["occurred_at"] = when
    r = post(client, "/v1/events", event)
    assert r.status_code == 422
    assert {"field": "occurred_at", "problem": problem, "type": "value_error"} in r.json()["errors"]
    batch = post(client, "/v1/events:batch", {"events": [missing_opened(), event]})
    assert batch.status_code == 422
    assert {"index": 1, "field": "occurred_at", "problem": problem, "type": "value_error"} in (
        batch.json()["errors"]
    )
    assert sink.published == []


def test_a_header_injection_attempt_is_422_naming_the_field_without_echoing_it(
    client: TestClient, sink: MemoryEventSink
) -> None:
    event = missing_opened(child_id="C-1\r\nBcc: someone@evil.example")
    r = post(client, "/v1/events", event)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "field": "child_id",
            "problem": "must contain only printable characters (no control, bidi or zero-width)",
            "type": "value_error",
        }
    ]
    assert "evil" not in r.text
    assert sink.published == []
