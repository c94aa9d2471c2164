"""End-to-end latency: POST /v1/events (missing.opened) → ingest → rules → notify → the law
enforcement webhook arriving at a real HTTP sink, at a steady rate.

    .venv/bin/python -m bench.e2e [--events 300] [--rate 20]

Uses KAFKA_BOOTSTRAP_SERVERS if set, else a throw-away broker.

Each missing.opened fans out to about six deliveries (caseworker and supervisor for two reports,
law enforcement, shelters), so the default 20 events/s is about 120 deliveries/s, roughly half of
what notify sustained in bench.notify on 2 cores. Writes bench/results/e2e.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from tests.integration.notify_support import start_stack  # noqa: E402
from tests.integration.services import ingest_service, rules_service  # noqa: E402
from tests.support import kafka_bootstrap, missing_opened, temp_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20)
    args = parser.parse_args()
    with kafka_bootstrap() as bootstrap, temp_dir() as tmp:
        ingest = ingest_service(bootstrap, tmp)
        rules = rules_service(bootstrap, tmp, f"bench-e2e-{uuid.uuid4().hex[:6]}", tmp / "rules")
        ingest.start()
        rules.start()
        stack = start_stack(bootstrap, tmp, tmp)
        try:
            while httpx.get(f"{rules.url}/readyz").status_code != 200:
                time.sleep(0.2)
            posted: dict[str, float] = {}
            start = time.time()
            with httpx.Client(timeout=30) as client:
                for i in range(args.events):
                    wait = start + i / args.rate - time.time()
                    if wait > 0:
                        time.sleep(wait)
                    child = f"B-{i:05d}"
                    event = missing_opened(child_id=child)
                    t = time.time()
                    r = client.post(
                        f"{ingest.url}/v1/events",
                        json=event,
                        headers={"Authorization": "Bearer demo-not-a-secret"},
                    )
                    assert r.status_code == 202, r.text
                    posted[child] = t
            deadline = time.monotonic() + 300
            arrived: dict[str, float] = {}
            while len(arrived) < len(posted) and time.monotonic() < deadline:
                for rec in stack.http.on("/hooks/le"):
                    child = rec.json()["data"]["child_id"]
                    arrived.setdefault(child, rec.at)
                time.sleep(0.1)
        finally:
            stack.stop()
            rules.stop()
            ingest.stop()
    latencies = sorted(arrived[c] - posted[c] for c in arrived)
    result = {
        "events": args.events,
        "rate_per_s": args.rate,
        "delivered": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "max_ms": round(1000 * latencies[-1], 1),
        "cores": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(),
    }
    report("e2e", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
