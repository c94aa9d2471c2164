"""The engine's answers, byte for byte: `carealert replay` of a fixed simulated caseload (400
children over a year, seed 18, every deadline fired to 2027-01-01) must print exactly the
escalations committed in tests/golden/ before the engine was made faster (issue 18).

A deliberate change of the policy or of what an escalation holds regenerates the golden file:

    gunzip -c tests/golden/replay-events.jsonl.gz > /tmp/events.jsonl
    carealert replay --until 2027-01-01T00:00:00+00:00 /tmp/events.jsonl \
        | gzip -9n > tests/golden/replay-escalations.jsonl.gz
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from services.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
POLICY = Path(__file__).resolve().parents[2] / "rules"
UNTIL = "2027-01-01T00:00:00+00:00"


def test_replay_prints_the_golden_escalations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(gzip.decompress((GOLDEN / "replay-events.jsonl.gz").read_bytes()))
    expected = gzip.decompress((GOLDEN / "replay-escalations.jsonl.gz").read_bytes()).decode()

    assert main(["replay", "--policy", str(POLICY), "--until", UNTIL, str(events)]) == 0
    got = capsys.readouterr().out

    want_lines, got_lines = expected.splitlines(), got.splitlines()
    assert len(want_lines) == 14846
    for n, (want, have) in enumerate(zip(want_lines, got_lines, strict=False), start=1):
        assert have == want, f"escalation {n} differs from the golden file"
    assert len(got_lines) == len(want_lines)
    assert got == expected
