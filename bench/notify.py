"""Notify delivery latency and throughput on the real broker: N escalations published at once
to care.escalations.v1, each routed to a real HTTP webhook sink.

    .venv/bin/python -m bench.notify [--escalations 1000] [--rate R]

Latency is from the escalation's created_at (set just before it is published) to the moment the
sink received the webhook. Prints p50, p99, max, deliveries/s and the CPU notify spent per
escalation (steadier than the latencies on a shared machine); writes
bench/results/notify-<rate or burst>.json. Uses KAFKA_BOOTSTRAP_SERVERS if set, else a
throw-away broker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from services.common import topics  # noqa: E402
from tests.integration.notify_support import start_stack  # noqa: E402
from tests.support import kafka_bootstrap, make_escalation, temp_dir  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--escalations", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=0, help="escalations/s to publish at (0: all at once)"
    )
    args = parser.parse_args()
    with kafka_bootstrap() as bootstrap, temp_dir() as tmp:
        stack = start_stack(bootstrap, tmp, tmp)
        try:
            assert stack.service.proc is not None
            pid = stack.service.proc.pid
            producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5)
            escalations = [
                make_escalation(recipients=["law_enforcement"]) for _ in range(args.escalations)
            ]
            cpu_before = cpu_seconds(pid)
            started = time.time()
            for i, esc in enumerate(escalations):
                if args.rate:
                    wait = started + i / args.rate - time.time()
                    if wait > 0:
                        time.sleep(wait)
                esc = esc.model_copy(update={"created_at": datetime.now(UTC)})
                producer.send(topics.ESCALATIONS, key=esc.key.encode(), value=esc.to_bytes())
                if args.rate:
                    producer.flush()
            producer.flush()
            deadline = time.monotonic() + 300
            while len(stack.http.on("/hooks/le")) < args.escalations:
                if time.monotonic() > deadline:
                    raise TimeoutError("not all webhooks arrived in 5 minutes")
                time.sleep(0.02)
            cpu_after = cpu_seconds(pid)
            received = stack.http.on("/hooks/le")
            created_by_id = {}
            for r in received:
                created_by_id[r.json()["escalation_id"]] = datetime.fromisoformat(
                    r.json()["data"]["created_at"]
                ).timestamp()
            latencies = [r.at - created_by_id[r.json()["escalation_id"]] for r in received]
            elapsed = max(r.at for r in received) - started
        finally:
            stack.stop()
    cpu_ms = (
        round(1000 * (cpu_after - cpu_before) / args.escalations, 2)
        if cpu_before is not None and cpu_after is not None
        else None
    )
    result = {
        "escalations": args.escalations,
        "rate": args.rate or "burst",
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "max_ms": round(1000 * max(latencies), 1),
        "deliveries_per_s": round(args.escalations / elapsed),
        "notify_cpu_ms_per_escalation": cpu_ms,
        "cores": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(),
    }
    report(
        f"notify-{args.rate or 'burst'}",
        result,
        [
            "escalations",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "deliveries_per_s",
            "notify_cpu_ms_per_escalation",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
