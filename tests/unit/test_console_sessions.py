"""Sessions and the lockout (pure), the console's signed requests to notify, and the deadline the
console counts down to."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from services.console import sessions as sessions_module
from services.console.acking import NotifyAcks
from services.console.projection import deadline_of
from services.console.sessions import Lockout, Sessions
from tests.support import make_escalation

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def test_attempts_are_counted_before_the_password_is_checked() -> None:
    lockout = Lockout(failures=5, window_s=900)
    # Forty guesses sent at once: each is counted as it arrives, before any password check
    # answers, so only five get to be checked.
    allowed = [lockout.attempt("mo-jackson", "W-1", NOW) for _ in range(40)]
    assert allowed.count(True) == 5
    assert lockout.locked("MO-JACKSON", " w-1 ", NOW)  # the same sign-in, however typed
    assert not lockout.locked("mo-jackson", "W-1", NOW + timedelta(seconds=901))


def test_the_right_password_clears_the_count() -> None:
    lockout = Lockout(failures=3, window_s=900)
    for _ in range(2):
        assert lockout.attempt("mo-jackson", "W-1", NOW)
    lockout.succeeded("mo-jackson", "W-1")
    assert all(lockout.attempt("mo-jackson", "W-1", NOW) for _ in range(3))


def test_a_full_table_forgets_unlocked_sign_ins_never_a_locked_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sessions_module, "MAX_TRACKED", 3)
    lockout = Lockout(failures=2, window_s=900)
    for _ in range(2):
        lockout.attempt("a", "victim", NOW)
    assert lockout.locked("a", "victim", NOW)
    for i in range(50):  # made-up staff ids, one attempt each
        assert lockout.attempt("a", f"made-up-{i}", NOW)
    assert lockout.locked("a", "victim", NOW)  # still locked
    assert lockout.attempt("a", "someone-else", NOW)  # and others can still sign in
    for name in ("x", "y"):  # a table of locked sign-ins only refuses new ones
        for _ in range(2):
            lockout.attempt("a", name, NOW)
    assert not lockout.attempt("a", "newcomer", NOW)


def test_a_person_keeps_at_most_twenty_sessions() -> None:
    sessions = Sessions(idle_s=900)
    tokens = [sessions.start("a", "W-1", ("caseworker",), NOW)[0] for _ in range(25)]
    other, _ = sessions.start("a", "W-2", ("caseworker",), NOW)
    assert sessions.find(tokens[0], NOW) is None and sessions.find(tokens[-1], NOW) is not None
    assert len(sessions) == 21 and sessions.find(other, NOW) is not None


def test_the_ack_secret_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    secret = "console-test-secret-5a1f9c3e7b2d4f6a8c0e"
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(202)))
    acks = NotifyAcks("http://127.0.0.1:1", SecretStr(secret), client)
    assert secret not in repr(acks)
    caplog.set_level(logging.DEBUG)
    answer = asyncio.run(acks.acknowledge("mo-jackson", "W-1", "esc-1", None))
    assert answer.outcome == "recorded"
    assert secret not in caplog.text


def test_an_overdue_step_counts_from_the_deadline_it_missed() -> None:
    due = NOW + timedelta(hours=2)
    assert deadline_of(make_escalation(due_at=due)) == due
    overdue = make_escalation(
        rule_id="federal.report-ncmec.overdue",
        due_at=None,
        evidence={"was_due_at": NOW.isoformat()},
    )
    assert deadline_of(overdue) == NOW
    assert deadline_of(make_escalation(due_at=None, evidence={})) is None
