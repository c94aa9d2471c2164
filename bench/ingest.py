"""Ingest throughput on the real broker, driven by wrk (Debian's package) from another process.

    .venv/bin/python -m bench.ingest [--seconds 15] [--connections 32] [--repeat 2]

Single: POST /v1/events, one event per request. Batch: POST /v1/events:batch with 1,000 events.
Every 202 means Kafka acknowledged the write (acks=all). Each figure is the median of
`--repeat` runs. Baselines in the same run, so that a busy machine shows in both: the HTTP
stack alone (the same uvicorn and FastAPI, a handler that reads the body and answers 202) under
the same wrk load, and the Kafka producer alone (ingest's producer settings, 1,000 records of the
same bytes per flush). Writes bench/results/ingest.json (docs/bench.md).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from tests.integration.services import ingest_service  # noqa: E402
from tests.support import (  # noqa: E402
    ensure_debian_tool,
    free_port,
    kafka_bootstrap,
    missing_opened,
    temp_dir,
    wait_until,
)

GOAL_SINGLE_REQUESTS_PER_S = 3000  # issue 18
GOAL_BATCH_EVENTS_PER_S = 30000
BATCH = 1000

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer demo-not-a-secret"
wrk.body = io.open("{body}"):read("*a")
"""


def run_wrk(
    wrk: str, url: str, body: Path, seconds: int, connections: int, tmp: Path
) -> tuple[float, int]:
    """(requests per second, responses other than 2xx)."""
    script = tmp / f"{body.stem}.lua"
    script.write_text(LUA.format(body=body))
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(non2xx.group(1)) if non2xx else 0


def serve_baseline(port: int) -> None:
    """The HTTP stack alone: uvicorn as services.ingest.main runs it, one FastAPI route that
    reads the body and answers a constant 202."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    @app.post("/v1/events", status_code=202)
    async def post(request: Request) -> Response:
        await request.body()
        return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def baseline_http(wrk: str, body: Path, args: argparse.Namespace, tmp: Path) -> list[float]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ingest", "--serve-baseline", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the baseline HTTP server")
        url = f"http://127.0.0.1:{port}/v1/events"
        return [
            run_wrk(wrk, url, body, args.seconds, args.connections, tmp)[0]
            for _ in range(args.repeat)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def baseline_producer(bootstrap: str, seconds: int) -> float:
    """Events per second of ingest's Kafka producer alone: BATCH records of a batch event's
    bytes, then a flush (every ack), again and again for `seconds`."""
    from kafka import KafkaProducer

    from services.common.events import event_bytes, parse_event_obj
    from services.common.kafka import KafkaClient, producer_config
    from services.ingest.sink import BATCH_BYTES

    config = producer_config(KafkaClient.plaintext([bootstrap]), client_id="bench", timeout_s=10)
    producer = KafkaProducer(**{**config, "batch_size": BATCH_BYTES})
    events = [parse_event_obj(missing_opened()) for _ in range(BATCH)]
    records = [(e.key.encode(), event_bytes(e)) for e in events]
    try:
        sent = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for key, value in records:
                producer.send("care.events.v1", key=key, value=value)
            producer.flush()
            sent += len(records)
        return sent / (time.perf_counter() - started)
    finally:
        producer.close(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (median)")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    wrk = ensure_debian_tool("wrk", "wrk")
    batch_connections = max(2, args.connections // 8)
    with kafka_bootstrap() as bootstrap, temp_dir() as tmp:
        single = tmp / "single.json"
        single.write_text(json.dumps(missing_opened()))
        batch = tmp / "batch.json"
        batch.write_text(json.dumps({"events": [missing_opened() for _ in range(BATCH)]}))
        http_rates = baseline_http(wrk, single, args, tmp)
        svc = ingest_service(bootstrap, tmp)
        svc.start()
        try:
            singles, batches, non2xx = [], [], 0
            for _ in range(args.repeat):
                rate, bad = run_wrk(
                    wrk, f"{svc.url}/v1/events", single, args.seconds, args.connections, tmp
                )
                singles.append(rate)
                non2xx += bad
                rate, bad = run_wrk(
                    wrk, f"{svc.url}/v1/events:batch", batch, args.seconds, batch_connections, tmp
                )
                batches.append(rate * BATCH)
                non2xx += bad
        finally:
            svc.stop()
        producer_rates = [baseline_producer(bootstrap, args.seconds) for _ in range(args.repeat)]
    single_rate = statistics.median(singles)
    batch_rate = statistics.median(batches)
    http_rate = statistics.median(http_rates)
    producer_rate = statistics.median(producer_rates)
    result = {
        "single_requests_per_s": round(single_rate),
        "batch_events_per_s": round(batch_rate),
        "baseline_http_requests_per_s": round(http_rate),
        "baseline_producer_events_per_s": round(producer_rate),
        "single_ratio_to_http": round(single_rate / http_rate, 3),
        "batch_ratio_to_producer": round(batch_rate / producer_rate, 3),
        "single_ratio_to_goal": round(single_rate / GOAL_SINGLE_REQUESTS_PER_S, 3),
        "batch_ratio_to_goal": round(batch_rate / GOAL_BATCH_EVENTS_PER_S, 3),
        "non_2xx": non2xx,
        "runs": {
            "single_requests_per_s": [round(r) for r in singles],
            "batch_events_per_s": [round(r) for r in batches],
            "baseline_http_requests_per_s": [round(r) for r in http_rates],
            "baseline_producer_events_per_s": [round(r) for r in producer_rates],
        },
        "goals": {
            "single_requests_per_s": GOAL_SINGLE_REQUESTS_PER_S,
            "batch_events_per_s": GOAL_BATCH_EVENTS_PER_S,
        },
        "connections": {"single": args.connections, "batch": batch_connections},
        "seconds": args.seconds,
        "at": datetime.now(UTC).isoformat(),
    }
    report("ingest", result, [k for k in result if k not in ("runs", "goals", "at")])
    return 0 if non2xx == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
