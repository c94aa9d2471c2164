"""Train the zstd dictionary child states are stored with (services.rules.statecodec).

    .venv/bin/python -m bench.state_dictionary --id 2

Replays a simulated caseload (1,000 children over a year, seed 1: never the caseload
bench/state_size.py measures with) and trains a 16 KiB dictionary on the states it leaves,
written as services/rules/dictionaries/state-<id>.zdict. A released dictionary is never
replaced (states written with it name it): train a new id, then set statecodec.WRITE_WITH.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import zstandard

from services.common.events import parse_event_obj
from services.localdev.simulate import SimConfig, generate
from services.rules.core import Engine
from services.rules.offline import VirtualRun
from services.rules.policy import load_policy
from services.rules.statecodec import DICTIONARIES

ROOT = Path(__file__).resolve().parents[1]
SIZE = 16 * 1024


def plain_states(children: int, seed: int, end: datetime) -> list[bytes | bytearray | memoryview]:
    """The JSON of every child's state after replaying a simulated caseload up to `end`."""
    raw = generate(SimConfig(children=children, days=365, seed=seed, end=end))
    run = VirtualRun(Engine(load_policy(ROOT / "rules")))
    for event in raw:
        run.apply(parse_event_obj(event, now=end))
    run.advance(end)
    return [s.to_bytes() for s in run.states.values()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--id", type=int, required=True, help="the new dictionary's id (>= 1)")
    args = parser.parse_args()
    if args.id < 1:
        parser.error("--id must be 1 or more (0 means no dictionary to zstd)")
    out = DICTIONARIES / f"state-{args.id}.zdict"
    if out.exists():
        sys.stderr.write(f"{out} exists: a released dictionary is never replaced\n")
        return 1
    samples = plain_states(1000, 1, datetime(2026, 11, 1, tzinfo=UTC))
    trained = zstandard.train_dictionary(SIZE, samples, dict_id=args.id, level=3)
    out.write_bytes(trained.as_bytes())
    print(f"wrote {out} ({len(trained.as_bytes())} bytes) from {len(samples)} states")
    return 0


if __name__ == "__main__":
    sys.exit(main())
