"""The ingest HTTP layer with an in-memory sink: status codes, bodies, all-or-nothing batches.
The same paths run against the real broker in tests/integration/test_ingest.py."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.common.secrets import secret_hash
from services.ingest.app import create_app
from services.ingest.body import DECODE_CHUNK, BodyReader, BodyRejected
from services.ingest.keys import ApiKeys, ApiKeysInvalid
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
    keys = ApiKeys({secret_hash(KEY): "demo-agency", secret_hash("other"): "other-agency"})
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
    ("sent", "kept"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01; injected", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        (None, False),
    ],
)
def test_a_valid_traceparent_travels_with_the_event_and_anything_else_is_dropped(
    client: TestClient, sink: MemoryEventSink, sent: str | None, kept: bool
) -> None:
    headers = AUTH | ({"traceparent": sent} if sent else {})
    assert post(client, "/v1/events", missing_opened(), headers).status_code == 202
    assert sink.traces == [sent if kept else None]


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
    good.write_text(f"keys:\n  - agency_id: a-1\n    sha256: {secret_hash('k')}\n")
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
        f"keys:\n  - agency_id: a-1\n    sha256: {secret_hash('k')}\n"
        f"  - agency_id: a-2\n    sha256: {secret_hash('k')}\n"
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


# --- Content-Encoding, byte order mark (services/ingest/body.py) ------------------------------


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # RFC 9110: the zlib format
    "deflate-raw": raw_deflate,  # what some clients send as deflate
}


def post_bytes(client: TestClient, path: str, body: bytes, encoding: str | None = None) -> Any:
    headers = {**AUTH, "Content-Type": "application/json"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_compressed_bodies_are_decoded(
    client: TestClient, sink: MemoryEventSink, coding: str
) -> None:
    event = missing_opened(child_id="C-zip")
    body = ENCODERS[coding](json.dumps(event).encode())
    r = post_bytes(client, "/v1/events", body, coding.removesuffix("-raw"))
    assert r.status_code == 202, r.text
    assert r.json() == {"event_id": event["event_id"], "status": "accepted"}
    assert json.loads(sink.published[0][1])["event_id"] == event["event_id"]

    events = [missing_opened() for _ in range(3)]
    body = ENCODERS[coding](json.dumps({"events": events}).encode())
    r = post_bytes(client, "/v1/events:batch", body, coding.removesuffix("-raw"))
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 3


@pytest.mark.parametrize("header", ["identity", "Identity", "identity, gzip", "GZIP"])
def test_identity_and_case_of_codings(client: TestClient, header: str) -> None:
    raw = json.dumps(missing_opened()).encode()
    body = gzip.compress(raw) if "gzip" in header.lower() else raw
    assert post_bytes(client, "/v1/events", body, header).status_code == 202


def test_gzip_members_one_after_another_are_one_body(client: TestClient) -> None:
    raw = json.dumps(missing_opened()).encode()
    body = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    assert post_bytes(client, "/v1/events", body, "gzip").status_code == 202


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("br", "Content-Encoding br is not supported; send gzip, deflate or identity"),
        ("compress", "Content-Encoding compress is not supported; send gzip, deflate or identity"),
        ("zstd", "Content-Encoding zstd is not supported; send gzip, deflate or identity"),
        (
            "gzip, br",
            "Content-Encoding gzip, br: only one coding is supported; send gzip, deflate or identity",
        ),
        (
            "gzip, gzip",
            "Content-Encoding gzip, gzip: only one coding is supported;"
            " send gzip, deflate or identity",
        ),
        ("x-secret-Codec-99", "unsupported Content-Encoding; send gzip, deflate or identity"),
        ("gzip, <script>", "unsupported Content-Encoding; send gzip, deflate or identity"),
        ("gzip;q=1", "unsupported Content-Encoding; send gzip, deflate or identity"),
    ],
)
def test_other_codings_are_415_naming_only_known_tokens(
    client: TestClient, sink: MemoryEventSink, metrics: IngestMetrics, header: str, detail: str
) -> None:
    r = post_bytes(client, "/v1/events", json.dumps(missing_opened()).encode(), header)
    assert r.status_code == 415
    assert r.json() == {"detail": detail}
    assert "secret" not in r.text and "script" not in r.text
    assert sink.published == []
    assert (
        metrics.registry.get_sample_value(
            "carealert_ingest_events_rejected_total", {"reason": "unsupported_encoding"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("coding", "body", "detail"),
    [
        ("gzip", b"not gzip at all", "gzip body is corrupt: incorrect header check"),
        (
            "gzip",
            gzip.compress(b'{"a": 1}')[:-6],
            "gzip body is corrupt: truncated (the compressed stream does not end)",
        ),
        ("gzip", b"", "gzip body is corrupt: truncated (the compressed stream does not end)"),
        (
            "gzip",
            gzip.compress(b'{"a": 1}') + b"trailing",
            "gzip body is corrupt: incorrect header check",
        ),
        (
            "deflate",
            zlib.compress(b'{"a": 1}') + b"x",
            "deflate body is corrupt: data after the end of the compressed stream",
        ),
        ("deflate", b"\x78\x9c\xff\xff\xff", "deflate body is corrupt: invalid block type"),
    ],
)
def test_corrupt_encoded_body_is_400_naming_the_problem(
    client: TestClient, sink: MemoryEventSink, coding: str, body: bytes, detail: str
) -> None:
    r = post_bytes(client, "/v1/events", body, coding)
    assert r.status_code == 400
    assert r.json() == {"detail": detail}
    assert sink.published == []


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_decompression_bomb_is_413_and_memory_stays_bounded(
    client: TestClient, sink: MemoryEventSink, coding: str
) -> None:
    """10 MB of zeros in about 10 KB: refused once the decoded size passes the limit (64 KiB
    here), without ever holding the 10 MB."""
    bomb = ENCODERS[coding](b"0" * 10_000_000)
    assert len(bomb) < 20_000
    client.get("/healthz")  # the app and its thread are up before measuring
    tracemalloc.start()
    try:
        r = post_bytes(client, "/v1/events", bomb, coding)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413
    assert r.json() == {"detail": "body is larger than 65536 bytes"}
    assert peak < 1_000_000, peak
    assert sink.published == []


def test_body_reader_holds_at_most_the_limit_plus_one_chunk() -> None:
    limit = 1024 * 1024
    bomb = gzip.compress(b"\0" * 200_000_000)  # 200 MB in about 200 KB
    reader = BodyReader("gzip", limit)
    tracemalloc.start()
    try:
        with pytest.raises(BodyRejected) as caught:
            for i in range(0, len(bomb), 16384):
                reader.feed(bomb[i : i + 16384])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (caught.value.status, caught.value.detail) == (413, "body is larger than 1048576 bytes")
    assert peak < limit + 2 * DECODE_CHUNK + 100_000, peak


def test_limit_holds_for_the_bytes_received_too(client: TestClient) -> None:
    # Incompressible bytes: the gzip body is bigger than the limit before it is decoded.
    body = gzip.compress(bytes(range(256)) * 300, compresslevel=0)
    assert len(body) > 64 * 1024
    r = post_bytes(client, "/v1/events", body, "gzip")
    assert r.status_code == 413


@given(
    coding=st.sampled_from(sorted(ENCODERS)),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_any_chunking_decodes_the_same(coding: str, cuts: list[int]) -> None:
    raw = json.dumps(missing_opened(description={"name": "x" * 500})).encode()
    body = ENCODERS[coding](raw)
    reader = BodyReader("gzip" if "gzip" in coding else "deflate", 64 * 1024)
    last = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        reader.feed(body[last:cut])
        last = cut
    reader.feed(body[last:])
    assert reader.finish() == raw


@pytest.mark.parametrize("coding", [None, "gzip"])
def test_a_utf8_byte_order_mark_is_ignored(
    client: TestClient, sink: MemoryEventSink, coding: str | None
) -> None:
    event = missing_opened()
    body = b"\xef\xbb\xbf" + json.dumps(event).encode()
    r = post_bytes(client, "/v1/events", gzip.compress(body) if coding else body, coding)
    assert r.status_code == 202, r.text
    batch = b"\xef\xbb\xbf" + json.dumps({"events": [missing_opened()]}).encode()
    assert post_bytes(client, "/v1/events:batch", batch).status_code == 202
    assert len(sink.published) == 2


def test_a_utf16_body_is_still_422(client: TestClient) -> None:
    body = json.dumps(missing_opened()).encode("utf-16")  # starts with the UTF-16 BOM
    r = post_bytes(client, "/v1/events", body)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "(root)", "problem": "body is not UTF-8", "type": "json_invalid"}
    ]


# --- the OpenAPI document ----------------------------------------------------------------------


def spec_of(client: TestClient) -> dict[str, Any]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    return spec


def assert_matches(spec: dict[str, Any], component: str, body: Any) -> None:
    """`body` is valid against components/schemas/<component> of `spec`."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_openapi_names_operations_servers_and_security(client: TestClient) -> None:
    spec = spec_of(client)
    ops = {
        (path, method): op for path, item in spec["paths"].items() for method, op in item.items()
    }
    assert {k: op["operationId"] for k, op in ops.items()} == {
        ("/v1/events", "post"): "postEvent",
        ("/v1/events:batch", "post"): "postEventBatch",
        ("/healthz", "get"): "getHealthz",
        ("/readyz", "get"): "getReadyz",
        ("/metrics", "get"): "getMetrics",
    }
    assert spec["servers"] == [{"url": "/"}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "security" not in spec  # nothing global: health and metrics need no key
    for (path, _), op in ops.items():
        assert op.get("security") == ([{"bearer": []}] if path.startswith("/v1/") else None)


def test_health_endpoints_need_no_api_key(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_openapi_servers_follow_the_public_url_setting(
    sink: MemoryEventSink, metrics: IngestMetrics
) -> None:
    settings = IngestSettings(ingest_public_url="https://ingest.example.org")
    app = create_app(settings, ApiKeys({}), sink, metrics)
    assert spec_of(TestClient(app))["servers"] == [{"url": "https://ingest.example.org"}]
    with pytest.raises(ValueError, match="ingest_public_url"):
        IngestSettings(ingest_public_url="ingest.example.org")


def test_openapi_error_responses_are_problems_with_their_headers(client: TestClient) -> None:
    spec = spec_of(client)
    schemas = spec["components"]["schemas"]
    assert schemas["Problem"]["required"] == ["detail"]
    assert schemas["ErrorItem"]["required"] == ["field", "problem"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for path in ("/v1/events", "/v1/events:batch"):
        responses = spec["paths"][path]["post"]["responses"]
        assert sorted(responses) == ["202", "400", "401", "403", "413", "415", "422", "503"]
        for status, response in responses.items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            expected = "Problem" if status != "202" else ("EventAccepted", "BatchAccepted")
            assert ref.rsplit("/", 1)[1] in expected, (path, status)
        assert set(responses["401"]["headers"]) == {"WWW-Authenticate"}
        assert set(responses["503"]["headers"]) == {"Retry-After"}
    batch_body = spec["paths"]["/v1/events:batch"]["post"]["requestBody"]
    assert batch_body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventBatch"
    }


def test_what_the_server_answers_matches_the_declared_schemas(
    client: TestClient, sink: MemoryEventSink
) -> None:
    spec = spec_of(client)
    event = missing_opened()
    assert_matches(spec, "EventAccepted", post(client, "/v1/events", event).json())
    ok = post(client, "/v1/events:batch", {"events": [missing_opened()]})
    assert_matches(spec, "BatchAccepted", ok.json())
    bad = missing_opened()
    del bad["payload"]["episode_id"]
    other = missing_opened()
    other["agency_id"] = "other-agency"
    answers = [
        post(client, "/v1/events", bad),
        post(client, "/v1/events:batch", {"events": [bad, bad]}),
        post(client, "/v1/events", other),
        post(client, "/v1/events", event, headers={}),
        post_bytes(client, "/v1/events", b"junk", "gzip"),
        post_bytes(client, "/v1/events", b"{}", "br"),
        post_bytes(client, "/v1/events", b"{" * 70_000),
        client.get("/nowhere"),
    ]
    sink.available = False
    answers.append(post(client, "/v1/events", missing_opened()))
    assert [r.status_code for r in answers] == [422, 422, 403, 401, 400, 415, 413, 404, 503]
    for r in answers:
        assert_matches(spec, "Problem", r.json())


def test_fastapis_own_validation_errors_answer_a_problem_without_the_input(
    client: TestClient,
) -> None:
    """No route of ingest has parameters FastAPI validates today; one that did would still
    answer the declared Problem shape, not FastAPI's `detail: [...]` with the input in it."""
    app = client.app
    assert isinstance(app, FastAPI)

    @app.get("/probe")
    async def probe(n: int) -> int:
        return n

    r = client.get("/probe", params={"n": "secret-value"})
    assert r.status_code == 422
    assert r.json() == {
        "detail": "the request is not valid",
        "errors": [
            {
                "field": "query.n",
                "problem": "Input should be a valid integer, unable to parse string as an integer",
                "type": "int_parsing",
            }
        ],
    }
    assert "secret-value" not in r.text


# --- bounded events (docs/contract.md, "Bounded events") ---------------------------------------

SECRET_KEY = "Jane Marie Doe, SSN 123-45-6789"


@pytest.mark.parametrize("where", ["payload", "jurisdiction"])
def test_an_unknown_field_is_422_without_its_name_on_both_endpoints(
    client: TestClient, sink: MemoryEventSink, where: str
) -> None:
    event = missing_opened()
    event[where][SECRET_KEY] = "x"
    expected = {
        "field": where,
        "problem": "unknown field (not in the contract for this event type)",
        "type": "extra_forbidden",
    }
    one = post(client, "/v1/events", event)
    assert one.status_code == 422
    assert one.json()["errors"] == [expected]
    batch = post(client, "/v1/events:batch", {"events": [missing_opened(), event]})
    assert batch.status_code == 422
    assert batch.json()["errors"] == [{"index": 1, **expected}]
    for r in (one, batch):
        assert "Jane" not in r.text and "6789" not in r.text
    assert sink.published == []


def test_an_unbounded_list_is_422_naming_the_field(client: TestClient) -> None:
    event = missing_opened(immediate_risks=["incapacity"] * 7)
    r = post(client, "/v1/events", event)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert (error["field"], error["type"]) == ("payload.immediate_risks", "too_long")


def test_an_event_over_the_whole_event_limit_is_422_naming_the_limit(
    client: TestClient, sink: MemoryEventSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.common import events

    monkeypatch.setattr(events, "MAX_EVENT_BYTES", 300)
    for path, body in [
        ("/v1/events", missing_opened()),
        ("/v1/events:batch", {"events": [missing_opened()]}),
    ]:
        r = post(client, path, body)
        assert r.status_code == 422, path
        [error] = r.json()["errors"]
        assert error["field"] == "(root)" and error["type"] == "event_too_large"
        assert error["problem"] == "the event is larger than 300 bytes (as compact JSON)"
    assert sink.published == []


def test_an_event_kafka_refuses_as_too_large_is_413_without_retry_after(
    client: TestClient, sink: MemoryEventSink, metrics: IngestMetrics
) -> None:
    sink.max_record_bytes = 100
    r = post(client, "/v1/events", missing_opened())
    assert r.status_code == 413
    assert "retry-after" not in r.headers
    assert "too large" in r.json()["detail"]
    assert (
        metrics.registry.get_sample_value(
            "carealert_ingest_events_rejected_total", {"reason": "too_large"}
        )
        == 1.0
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("when", ["at once", "on the ack"])
async def test_the_kafka_sink_turns_a_too_large_refusal_into_sink_refused(
    monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """kafka-python refuses a record over max_request_size in send(), the broker one over its
    limit in the ack: both are SinkRefused (413), not SinkUnavailable (503)."""
    from kafka.errors import MessageSizeTooLargeError

    from services.common.events import parse_event_obj
    from services.common.kafka import KafkaClient
    from services.ingest.sink import KafkaEventSink, SinkRefused

    class Ack:
        def add_callback(self, _fn: Any) -> None:
            pass

        def add_errback(self, fn: Any) -> None:
            fn(MessageSizeTooLargeError())

    class Producer:
        def send(self, *_a: Any, **_kw: Any) -> Ack:
            if when == "at once":
                raise MessageSizeTooLargeError("too large")
            return Ack()

    monkeypatch.setattr(KafkaEventSink, "_new_producer", lambda self: Producer())
    monkeypatch.setattr(KafkaEventSink, "ready", lambda self: True)
    sink = KafkaEventSink(KafkaClient.plaintext(["127.0.0.1:1"]), timeout_s=1)
    with pytest.raises(SinkRefused):
        await sink.publish([parse_event_obj(missing_opened())])
