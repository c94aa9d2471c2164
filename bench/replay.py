"""The rules engine offline: `carealert replay` of a simulated caseload, next to reading and
validating the same events alone (the floor any replay pays), measured in the same run.

    .venv/bin/python -m bench.replay [--children 4500] [--days 365]

4,500 children over a year is about 94,000 events (issue 18's caseload). Prints:
- replay: `carealert replay FILE --until END` as a process, events/s from start to exit
  (output to /dev/null), best of --runs;
- engine: the same events through Engine/VirtualRun in this process, parsing and output left
  out: µs per event (goal: at most 50);
- parse: reading and validating the events alone (the baseline), events/s;
and the ratio of replay to parse. Writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402
from services.common.events import parse_event  # noqa: E402
from services.localdev.simulate import SimConfig, generate  # noqa: E402
from services.rules.core import Engine  # noqa: E402
from services.rules.offline import VirtualRun  # noqa: E402
from services.rules.policy import load_policy  # noqa: E402
from tests.support import temp_dir  # noqa: E402

END = datetime(2026, 11, 1, tzinfo=UTC)
GOAL_EVENTS_PER_S = 20_000
GOAL_ENGINE_US = 50


def best(runs: int, once: Callable[[], object]) -> float:
    """The shortest of `runs` timings of `once()` (seconds): the least disturbed by neighbours."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=4500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    raw = generate(SimConfig(children=args.children, days=args.days, seed=7, end=END))
    lines = [json.dumps(e, separators=(",", ":")).encode() for e in raw]
    policy = load_policy(ROOT / "rules")
    with temp_dir() as tmp:
        path = tmp / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")

        parse_s = best(args.runs, lambda: [parse_event(line) for line in lines])
        events = [parse_event(line) for line in lines]

        def engine_once() -> None:
            run = VirtualRun(Engine(policy))
            for event in events:
                run.apply(event)
            run.advance(END)

        engine_s = best(args.runs, engine_once)
        command = [
            str(ROOT / ".venv/bin/carealert"),
            "replay",
            "--policy",
            str(ROOT / "rules"),
            "--until",
            END.isoformat(),
            str(path),
        ]

        def replay_once() -> None:
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)

        replay_s = best(args.runs, replay_once)
    n = len(events)
    result = {
        "events": n,
        "children": args.children,
        "replay_events_per_s": round(n / replay_s),
        "replay_seconds": round(replay_s, 2),
        "engine_us_per_event": round(1e6 * engine_s / n, 1),
        "parse_events_per_s (baseline)": round(n / parse_s),
        "ratio_replay_to_parse": round(parse_s / replay_s, 3),
        "goal_replay_events_per_s": GOAL_EVENTS_PER_S,
        "goal_engine_us_per_event": GOAL_ENGINE_US,
        "at": datetime.now(UTC).isoformat(),
    }
    report("replay", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
