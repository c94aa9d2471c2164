"""Rules throughput on the real broker, next to a bare aiokafka consume→produce passthrough
measured in the same run on the same events.

    .venv/bin/python -m bench.rules [--events 30000] [--children 3000]

Starts a throw-away broker, writes the events to care.events.v1, then
1. passthrough: one aiokafka consumer → producer copying every record to another topic;
2. rules: `carealert rules` (a fresh consumer group), timed from its first processed event to
   its last by its own /metrics counter.
Prints both rates and the ratio; writes bench/results/rules.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from services.common import topics  # noqa: E402
from services.common.kafka import KafkaClient, ensure_topics  # noqa: E402
from tests.support import Broker, free_port, temp_dir  # noqa: E402

SETTINGS = ["group_home", "institution", "foster_family_relative", "foster_family_nonrelative"]


def caseload(children: int, per_child: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """A realistic mix: registration, placement, a run with reports, return, screening."""
    rng = random.Random(seed)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    out: list[tuple[bytes, bytes]] = []
    for c in range(children):
        child = f"C-{c:06d}"
        state = rng.choice(["MO", "KY", "TX", "OH", "GA"])

        def ev(
            n: int,
            event_type: str,
            payload: dict[str, Any],
            minutes: int,
            child: str = child,
            state: str = state,
        ) -> tuple[bytes, bytes]:
            body = {
                "event_id": f"{child}-{n}",
                "event_type": event_type,
                "schema_version": 1,
                "agency_id": "bench-agency",
                "child_id": child,
                "occurred_at": (t0 + timedelta(minutes=minutes)).isoformat(),
                "jurisdiction": {"state": state},
                "payload": payload,
            }
            return f"bench-agency:{child}".encode(), json.dumps(body).encode()

        seq = [
            ev(
                0,
                "child.registered",
                {"date_of_birth": "2010-03-01", "sex": rng.choice(["female", "male"])},
                0,
            ),
            ev(1, "placement.started", {"placement_id": "P-1", "setting": rng.choice(SETTINGS)}, 1),
            ev(
                2,
                "missing.opened",
                {
                    "episode_id": "E-1",
                    "last_seen_at": (t0 + timedelta(minutes=1)).isoformat(),
                    "circumstances": "runaway",
                },
                2,
            ),
            ev(
                3,
                "missing.law_enforcement_reported",
                {
                    "episode_id": "E-1",
                    "le_agency": "PD",
                    "report_number": "R",
                    "ncic_entry_confirmed": rng.random() < 0.8,
                },
                3,
            ),
            ev(4, "missing.ncmec_reported", {"episode_id": "E-1", "ncmec_case_number": "N"}, 4),
            ev(5, "missing.search_effort", {"episode_id": "E-1", "effort": "contact_friends"}, 5),
            ev(
                6,
                "missing.located",
                {"episode_id": "E-1", "located_at": (t0 + timedelta(minutes=6)).isoformat()},
                6,
            ),
            ev(
                7,
                "screening.completed",
                {
                    "episode_id": "E-1",
                    "tool": "cse_it",
                    "result": rng.choice(["no_concern", "possible_concern"]),
                },
                7,
            ),
            ev(8, "return.debrief_completed", {"episode_id": "E-1"}, 8),
            ev(9, "placement.started", {"placement_id": "P-2", "setting": rng.choice(SETTINGS)}, 9),
        ]
        out += seq[:per_child]
    return out


def produce_all(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap], acks="all", linger_ms=20, batch_size=256 * 1024
    )
    for key, value in records:
        producer.send(topics.EVENTS, key=key, value=value)
    producer.flush()
    producer.close()


async def passthrough(bootstrap: str, expected: int) -> float:
    """Events/s for consume → produce with nothing in between."""
    consumer = AIOKafkaConsumer(
        topics.EVENTS,
        bootstrap_servers=bootstrap,
        group_id=f"bench-pass-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    seen = 0
    started = 0.0
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if batch and not started:
                started = time.perf_counter()
            futures = []
            for _tp, records in batch.items():
                for r in records:
                    futures.append(
                        await producer.send("bench.passthrough", key=r.key, value=r.value)
                    )
                    seen += 1
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()
    return expected / elapsed


def processed(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(m)
        for m in re.findall(
            r"^carealert_rules_events_processed_total\{[^}]*\} ([0-9.e+]+)$", text, re.M
        )
    )


def rules_rate(
    bootstrap: str, expected: int, data_dir: Path, log: Path, workers: int
) -> tuple[float, float]:
    """Events/s of `workers` rules processes in one consumer group (they share partitions)."""
    app_id = f"bench-rules-{uuid.uuid4().hex[:6]}"
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    for i in range(workers):
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CAREALERT_RULES_PORT": str(port),
            "CAREALERT_RULES_APP_ID": app_id,
            "CAREALERT_RULES_DATA_DIR": str(data_dir / str(i)),
            "CAREALERT_POLICY_DIR": str(ROOT / "rules"),
            "CAREALERT_LOG_LEVEL": "WARNING",
        }
        out = log.with_suffix(f".{i}.log").open("wb")
        cmd = [str(ROOT / ".venv/bin/carealert"), "rules"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        first_t = first_n = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            n = 0.0
            for url in urls:
                try:
                    n += processed(url)
                except httpx.HTTPError:
                    pass
            now = time.perf_counter()
            if n > 0 and first_t is None:
                first_t, first_n = now, n
            if n >= expected:
                assert first_t is not None and first_n is not None
                return (n - first_n) / (now - first_t), now - first_t
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a rules worker exited; see {log.parent}")
            # Not more often: the worker serves each /metrics scrape on the loop it evaluates on.
            time.sleep(0.25)
        raise TimeoutError("rules did not finish in 15 minutes")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--per-child", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="rules processes in one group")
    args = parser.parse_args()
    children = max(1, args.events // args.per_child)
    records = caseload(children, args.per_child)
    broker = Broker()
    broker.start()
    try:
        with temp_dir() as tmp:
            ensure_topics(KafkaClient.plaintext([broker.bootstrap]), partitions=6, replication=1)
            t = time.perf_counter()
            produce_all(broker.bootstrap, records)
            produce_s = time.perf_counter() - t
            pass_rate = asyncio.run(passthrough(broker.bootstrap, len(records)))
            rules, rules_s = rules_rate(
                broker.bootstrap, len(records), tmp / "rules", tmp / "rules.log", args.workers
            )
    finally:
        broker.destroy()
    result = {
        "events": len(records),
        "children": children,
        "passthrough_events_per_s": round(pass_rate),
        "rules_events_per_s": round(rules),
        "rules_seconds": round(rules_s, 2),
        "ratio": round(rules / pass_rate, 3),
        "rules_workers": args.workers,
        "produce_events_per_s": round(len(records) / produce_s),
        "cores": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(),
    }
    report(
        f"rules-{args.workers}w",
        result,
        ["events", "passthrough_events_per_s", "rules_events_per_s", "rules_workers", "ratio"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
