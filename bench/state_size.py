"""Bytes of rules state per child on the simulated caseload (figures, not a test).

`python -m bench.state_size [--children N] [--days D]` replays a `carealert simulate` caseload
(default: 2,000 children over one year) through the engine on a virtual clock and prints the
state size per child as the table stores it (zstd with the state dictionary,
services.rules.statecodec) next to its plain JSON (the baseline, what it was stored as before
issue 18): mean, p50, p99 and max, and the projection for 100,000 children (goal: 150 MB).
Writes bench/results/state_size.json.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import report
from services.common.events import parse_event_obj
from services.localdev.simulate import SimConfig, generate
from services.rules.core import Engine
from services.rules.offline import VirtualRun
from services.rules.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB_PER_100K = 150


def figures(sizes: list[int]) -> dict[str, Any]:
    sizes = sorted(sizes)
    mean = statistics.fmean(sizes)
    return {
        "mean": round(mean),
        "p50": sizes[len(sizes) // 2],
        "p99": sizes[int(len(sizes) * 0.99)],
        "max": sizes[-1],
        "mb_per_100k_children": round(mean * 100_000 / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    end = datetime(2026, 11, 1, tzinfo=UTC)
    raw = generate(SimConfig(children=args.children, days=args.days, seed=args.seed, end=end))
    events = [parse_event_obj(e, now=end) for e in raw]
    run = VirtualRun(Engine(load_policy(ROOT / "rules")))
    for event in events:
        run.apply(event)
    run.advance(end)
    stored = figures([len(s.stored_bytes()) for s in run.states.values()])
    plain = figures([len(s.to_bytes()) for s in run.states.values()])
    result = {
        "events": len(events),
        "children": len(run.states),
        "stored_bytes_per_child": stored,
        "json_bytes_per_child (baseline)": plain,
        "stored_mb_per_100k_children": stored["mb_per_100k_children"],
        "goal_mb_per_100k_children": GOAL_MB_PER_100K,
        "ratio_stored_to_json": round(stored["mean"] / plain["mean"], 3),
        "at": datetime.now(UTC).isoformat(),
    }
    report("state_size", result)


if __name__ == "__main__":
    main()
