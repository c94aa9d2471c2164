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
from datetime import datetime
from pathlib import Path

import pytest

from services.cli import main
from services.common.escalations import Escalation
from services.common.events import parse_event
from services.rules.core import Engine, Input
from services.rules.offline import VirtualRun
from services.rules.policy import load_policy
from services.rules.state import ChildState

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


class _Checking(Engine):
    """An engine that checks, at every evaluation, that the state it was given is unchanged:
    states are copied on write, so a missed copy would change the caller's state."""

    def evaluate(
        self, state: ChildState | None, item: Input, now: datetime
    ) -> tuple[ChildState | None, list[Escalation]]:
        before = state.to_bytes() if state is not None else None
        result = super().evaluate(state, item, now)
        assert (state.to_bytes() if state is not None else None) == before
        return result


def test_evaluation_never_changes_the_state_it_is_given() -> None:
    raw = gzip.decompress((GOLDEN / "replay-events.jsonl.gz").read_bytes())
    run = VirtualRun(_Checking(load_policy(POLICY)))
    emitted = 0
    for line in raw.splitlines():
        emitted += len(run.apply(parse_event(line)))
    emitted += len(run.advance(datetime.fromisoformat(UNTIL)))
    assert emitted == 14846
