"""Ingest against the real broker: `carealert ingest` in a subprocess, real HTTP, records read
back from care.events.v1."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common import topics
from services.common.events import event_bytes, parse_event_obj
from tests.integration.services import AUTH, events_with_ids, ingest_service
from tests.support import (
    Broker,
    Service,
    ensure_debian_tool,
    missing_opened,
    read_topic,
    wait_for_records,
)


def post(svc: Service, path: str, body: Any, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{svc.url}{path}", json=body, headers=AUTH, timeout=timeout)


def test_posted_event_is_on_the_topic_with_key_and_bytes(ingest: Service, bootstrap: str) -> None:
    event = missing_opened(description={"name": "Test Child"})
    r = post(ingest, "/v1/events", event)
    assert r.status_code == 202, r.text
    assert r.json() == {"event_id": event["event_id"], "status": "accepted"}
    # 202 means acked: the record is readable right away, no waiting.
    [record] = events_with_ids(bootstrap, {event["event_id"]})
    assert record.key == f"demo-agency:{event['child_id']}".encode()
    assert record.value == event_bytes(parse_event_obj(event))
    assert record.json()["payload"]["description"]["name"] == "Test Child"


def test_same_child_always_lands_on_one_partition(ingest: Service, bootstrap: str) -> None:
    events = [missing_opened(child_id="C-same", episode_id=f"E-{i}") for i in range(5)]
    for e in events:
        assert post(ingest, "/v1/events", e).status_code == 202
    records = events_with_ids(bootstrap, {e["event_id"] for e in events})
    assert len({r.partition for r in records}) == 1
    assert [r.json()["event_id"] for r in sorted(records, key=lambda r: r.offset)] == [
        e["event_id"] for e in events
    ]


def test_batch_is_published_whole(ingest: Service, bootstrap: str) -> None:
    events = [missing_opened() for _ in range(50)]
    r = post(ingest, "/v1/events:batch", {"events": events})
    assert r.status_code == 202
    assert r.json()["accepted"] == 50
    assert len(events_with_ids(bootstrap, {e["event_id"] for e in events})) == 50


def test_batch_with_one_bad_event_publishes_nothing(ingest: Service, bootstrap: str) -> None:
    events = [missing_opened() for _ in range(10)]
    events[7]["payload"]["circumstances"] = "wandered"
    r = post(ingest, "/v1/events:batch", {"events": events})
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(7, "payload.circumstances")]
    assert events_with_ids(bootstrap, {e["event_id"] for e in events}) == []


def test_wrong_agency_is_403_and_nothing_published(ingest: Service, bootstrap: str) -> None:
    event = missing_opened()
    event["agency_id"] = "other-agency"
    r = post(ingest, "/v1/events", event)
    assert r.status_code == 403
    assert events_with_ids(bootstrap, {event["event_id"]}) == []


def test_unknown_key_is_401(ingest: Service) -> None:
    r = httpx.post(
        f"{ingest.url}/v1/events", json=missing_opened(), headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401


def test_body_over_one_mebibyte_is_413(ingest: Service) -> None:
    event = missing_opened()
    body = json.dumps({"events": [event] * 3000}).encode()
    assert len(body) > 1024 * 1024
    r = httpx.post(
        f"{ingest.url}/v1/events:batch",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_health_ready_metrics_openapi(ingest: Service) -> None:
    assert httpx.get(f"{ingest.url}/healthz").status_code == 200
    assert httpx.get(f"{ingest.url}/readyz").status_code == 200
    metrics = httpx.get(f"{ingest.url}/metrics").text
    assert 'carealert_ingest_events_accepted_total{event_type="missing.opened"}' in metrics
    spec = httpx.get(f"{ingest.url}/openapi.json").json()
    assert spec["info"]["title"] == "carealert ingest"
    assert spec["paths"]["/v1/events"]["post"]["operationId"] == "postEvent"


def test_curl_posts_a_gzip_file(ingest: Service, bootstrap: str, tmp_path: Path) -> None:
    """What an agency's shell script does: curl with a gzip file as the body."""
    curl = ensure_debian_tool("curl", "curl")
    event = missing_opened(child_id="C-curl")
    (tmp_path / "event.json.gz").write_bytes(gzip.compress(json.dumps(event).encode()))
    done = subprocess.run(
        [
            curl,
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--data-binary",
            "@event.json.gz",
            "-H",
            "Content-Encoding: gzip",
            "-H",
            "Content-Type: application/json",
            "-H",
            AUTH["Authorization"].join(("Authorization: ", "")),
            "--write-out",
            "\n%{http_code}",
            f"{ingest.url}/v1/events",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "202", done.stdout
    assert json.loads(body) == {"event_id": event["event_id"], "status": "accepted"}
    [record] = events_with_ids(bootstrap, {event["event_id"]})
    assert record.value == event_bytes(parse_event_obj(event))


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "deflate"])
def test_httpie_posts_an_event_from_stdin(
    ingest: Service, bootstrap: str, tmp_path: Path, compress: bool
) -> None:
    """`http POST URL Authorization:'Bearer KEY' < event.json`, and with `-xx` (HTTPie sends
    the body deflate-compressed, zlib format)."""
    event = missing_opened(child_id="C-httpie")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    with path.open("rb") as stdin:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "httpie",
                "--check-status",
                "--print=hb",
                "--timeout=30",
                *(["--compress", "--compress"] if compress else []),
                "POST",
                f"{ingest.url}/v1/events",
                f"Authorization:{AUTH['Authorization']}",
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HTTPIE_CONFIG_DIR": str(tmp_path / "httpie")},
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("HTTP/1.1 202"), done.stdout
    assert json.loads(done.stdout.split("\r\n\r\n", 1)[-1].split("\n\n", 1)[-1]) == {
        "event_id": event["event_id"],
        "status": "accepted",
    }
    [record] = events_with_ids(bootstrap, {event["event_id"]})
    assert record.json()["child_id"] == "C-httpie"


def test_restarted_ingest_still_accepts(bootstrap: str, log_dir: Path) -> None:
    svc = ingest_service(bootstrap, log_dir)
    svc.start()
    first = missing_opened()
    assert post(svc, "/v1/events", first).status_code == 202
    svc.stop(kill=True)
    svc.start()
    try:
        second = missing_opened()
        assert post(svc, "/v1/events", second).status_code == 202
        assert len(events_with_ids(bootstrap, {first["event_id"], second["event_id"]})) == 2
    finally:
        svc.stop()


def test_broker_down_is_503_and_nothing_half_written(log_dir: Path) -> None:
    """A broker of its own, stopped under a running ingest: 503 with Retry-After, the refused
    event never shows up later, and ingest recovers when the broker is back."""
    broker = Broker()
    broker.start()
    svc = ingest_service(broker.bootstrap, log_dir, CAREALERT_PUBLISH_TIMEOUT_S="3")
    try:
        svc.start()
        before = missing_opened()
        assert post(svc, "/v1/events", before).status_code == 202

        broker.stop()
        refused = missing_opened()
        r = post(svc, "/v1/events", refused)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert "retry" in r.json()["detail"]
        batch = [missing_opened() for _ in range(5)]
        assert post(svc, "/v1/events:batch", {"events": batch}).status_code == 503
        assert httpx.get(f"{svc.url}/readyz").status_code == 503
        # Once ingest knows the broker is unreachable it answers at once (no wait for acks).
        for _ in range(20):
            quick = post(svc, "/v1/events", missing_opened())
            assert quick.status_code == 503
            assert quick.json()["detail"].startswith("event store unreachable")
        # And the client library's connection errors are held back to one line per cause.
        lines = [ln for ln in svc.log_text().splitlines() if '"logger": "kafka' in ln]
        causes = Counter(json.loads(ln)["msg"].split(" (and ")[0] for ln in lines)
        assert lines and all(n <= 3 for n in causes.values()), causes.most_common(3)

        broker.start()
        after = missing_opened()
        r = post(svc, "/v1/events", after)
        assert r.status_code == 202, r.text
        wait_for_records(
            broker.bootstrap, topics.EVENTS, lambda rec: rec.json()["event_id"] == after["event_id"]
        )
        ids = {
            rec.json()["event_id"] for rec in read_topic(broker.bootstrap, topics.EVENTS)
        }  # own broker
        assert before["event_id"] in ids
        assert refused["event_id"] not in ids
        assert not ids & {e["event_id"] for e in batch}
    finally:
        svc.stop()
        broker.destroy()
