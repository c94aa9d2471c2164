"""Bytes of rules state per child on the simulated caseload (figures, not a test).

`python -m bench.state_size [--children N] [--days D]` replays a `carealert simulate` caseload
(default: 2,000 children over one year) through the engine on a virtual clock and prints the
stored state size per child: mean, p50, p99 and max, and the projection for 100,000 children.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from pathlib import Path

from services.common.events import parse_event_obj
from services.localdev.simulate import SimConfig, generate
from services.rules.core import Engine
from services.rules.offline import VirtualRun
from services.rules.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]


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
    sizes = sorted(len(s.to_bytes()) for s in run.states.values())
    mean = statistics.fmean(sizes)
    print(f"events {len(events)}  children {len(sizes)}")
    print(
        f"state bytes per child: mean {mean:.0f}  p50 {sizes[len(sizes) // 2]}  "
        f"p99 {sizes[int(len(sizes) * 0.99)]}  max {sizes[-1]}"
    )
    print(f"projected for 100,000 children: {mean * 100_000 / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
