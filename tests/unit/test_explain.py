"""`carealert policy explain --state XX` and the duty list of `policy check`: what a policy
analyst reviews, from the shipped policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import main
from services.rules.explain import condition_words

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def block(text: str, rule_id: str) -> str:
    """The lines explaining one duty."""
    start = text.index(f"{rule_id}  [")
    return text[start : text.index("\n\n", start)]


def test_explain_gives_each_duty_its_trigger_deadline_formula_recipients_and_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "policy", "explain", "--state", "mo", str(ROOT / "rules"))
    assert code == 0
    assert out.startswith("MO: Missouri (RSMo 210.795)\nclocks counted in America/Chicago")
    le = block(out, "federal.report-law-enforcement")
    assert "[base rule, changed by the state]" in le
    assert "trigger:    on missing.opened" in le
    assert "deadline:   within 2 h" in le
    assert "formula:    due_at = start + 2 h; start = the event's occurred_at" in le
    assert "recipients: caseworker, supervisor" in le
    assert "discharged: by missing.law_enforcement_reported" in le
    assert "source:     42 USC 671(a)(35)(B); changed by RSMo 210.795" in le
    alert = block(out, "alert.missing-child")
    assert "critical when immediate_risk_count > 0 or (age ≥ 0 and age < 13)" in alert
    assert "if missed:  no overdue step" in alert
    staffing = block(out, "policy.supervisor-staffing")
    assert "fires 24 h after last seen unless missing.located comes first" in staffing
    assert "within 2 calendar days" in staffing
    assert "same wall-clock time" in staffing


def test_a_state_without_an_overlay_has_the_base_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "policy", "explain", "--state", "OH", str(ROOT / "rules"))
    assert code == 0 and out.startswith("OH: no state overlay, the base rules apply")
    assert "America/New_York" in out
    assert "[base rule, changed" not in out and "deadline:   within 24 h" in out


def test_explain_refuses_a_state_that_is_not_a_usps_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "policy", "explain", "--state", "<b>", str(ROOT / "rules"))
    assert code == 2 and out == ""
    assert err == "policy explain: --state must be a two-letter USPS code such as MO\n"


def test_policy_check_lists_each_states_duties(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "check", str(ROOT / "rules"))
    assert code == 0
    assert "\nKY:\n  federal.report-law-enforcement: within 12 h, to caseworker, supervisor" in out
    assert "\nTX:\n" in out and "  tx.notify-court: within 24 h, to caseworker (state)" in out


def test_condition_words() -> None:
    assert condition_words(
        {"all": [{"age": {"lt": 13}}, {"party": {"in": ["court", "parent"]}}]}
    ) == ("age < 13 and party is one of court, parent")
    assert condition_words({"ncic_declined": True}) == "ncic_declined is true"
