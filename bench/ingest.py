"""Ingest throughput on the real broker, driven by wrk (Debian's package) from another process.

    .venv/bin/python -m bench.ingest [--seconds 15] [--connections 32]

Single: POST /v1/events, one event per request. Batch: POST /v1/events:batch with 1,000 events.
Every 202 means Kafka acknowledged the write (acks=all). Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from tests.integration.services import ingest_service  # noqa: E402
from tests.support import Broker, ensure_debian_tool, missing_opened, temp_dir  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer demo-not-a-secret"
wrk.body = io.open("{body}"):read("*a")
"""


def run_wrk(
    wrk: str, url: str, body: Path, seconds: int, connections: int, tmp: Path
) -> tuple[float, dict[int, int]]:
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
    return rate, {0: int(non2xx.group(1)) if non2xx else 0}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    wrk = ensure_debian_tool("wrk", "wrk")
    broker = Broker()
    broker.start()
    try:
        with temp_dir() as tmp:
            svc = ingest_service(broker.bootstrap, tmp)
            svc.start()
            try:
                single = tmp / "single.json"
                single.write_text(json.dumps(missing_opened()))
                batch = tmp / "batch.json"
                batch.write_text(json.dumps({"events": [missing_opened() for _ in range(1000)]}))
                single_rate, single_err = run_wrk(
                    wrk, f"{svc.url}/v1/events", single, args.seconds, args.connections, tmp
                )
                batch_rate, batch_err = run_wrk(
                    wrk,
                    f"{svc.url}/v1/events:batch",
                    batch,
                    args.seconds,
                    max(2, args.connections // 8),
                    tmp,
                )
            finally:
                svc.stop()
    finally:
        broker.destroy()
    result = {
        "single_requests_per_s": round(single_rate),
        "single_non_2xx": single_err[0],
        "batch_requests_per_s": round(batch_rate, 1),
        "batch_events_per_s": round(batch_rate * 1000),
        "batch_non_2xx": batch_err[0],
        "connections": args.connections,
        "cores": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(),
    }
    report("ingest", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
