"""Policy loading: the shipped policy loads and passes its scenarios; each invariant has an
inline YAML and the exact error."""

from __future__ import annotations

import re
import shutil
import textwrap
from datetime import time, timedelta
from pathlib import Path

import pytest
import yaml

from services.common.durations import parse_duration
from services.rules.clocks import DEFAULT_GRACE
from services.rules.core import Engine
from services.rules.matcher import compile_condition
from services.rules.policy import PolicyInvalid, load_policy
from services.rules.scenarios import run_directory

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_RULE_IDS = {
    "federal.report-law-enforcement",
    "federal.report-ncmec",
    "alert.missing-child",
    "policy.ncic-not-confirmed",
    "policy.supervisor-staffing",
    "federal.return-screening",
    "federal.return-debrief",
    "federal.trafficking-report",
    "risk.tier-changed",
    "compliance.ncmec-missing-48h",
}


def test_shipped_policy_has_every_contract_rule_and_overlay() -> None:
    policy = load_policy(ROOT / "rules")
    assert CONTRACT_RULE_IDS <= {r.id for r in policy.rules}
    assert {"MO", "KY", "TX"} <= set(policy.overlays)
    assert len(policy.version) == 64


def test_shipped_scenarios_pass() -> None:
    results = run_directory(Engine(load_policy(ROOT / "rules")), ROOT / "rules")
    assert len(results) >= 25
    failed = {f"{r.file}: {r.name}": r.failures for r in results if r.failures}
    assert failed == {}


def test_every_contract_rule_has_a_scenario() -> None:
    text = "".join(p.read_text() for p in (ROOT / "rules" / "tests").glob("*.yaml"))
    assert all(f"rule_id: {rule_id}" in text for rule_id in CONTRACT_RULE_IDS)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    return tmp_path / "rules"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def problems(directory: Path) -> list[str]:
    with pytest.raises(PolicyInvalid) as info:
        load_policy(directory)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "on: [missing.opened]\n    severity: high\n    action: Report the missing child to NCMEC",
            "on: [missing.openned]\n    severity: high\n    action: Report the missing child to NCMEC",
            "escalations.yaml: rules.1.on.0: unknown event type 'missing.openned'",
        ),
        (
            "recipients: [law_enforcement, shelter_network, on_call]",
            "recipients: [law_enforcement, shelters]",
            "escalations.yaml: rules.2.recipients.1: unknown recipient class 'shelters'",
        ),
        (
            "id: federal.report-ncmec",
            "id: federal.report-law-enforcement",
            "escalations.yaml: rules.1.id: duplicate rule id 'federal.report-law-enforcement'",
        ),
        (
            "when: {tier_rose: true}",
            "when: {race: white}",
            "escalations.yaml: rules.8.when.race: unknown fact field 'race'",
        ),
        (
            "due: 72h\n    resolved_by:\n      - event: screening.completed",
            "due: 3 days\n    resolved_by:\n      - event: screening.completed",
            "escalations.yaml: rules.5.due: '3 days' is not a deadline: use none, now, immediately",
        ),
        (
            "{any: [{immediate_risk_count: {gt: 0}}",
            "{any: [{immediate_risk_count: {gt: 'zero'}}",
            "escalations.yaml: rules.2.severity_when.0.when.any.0.immediate_risk_count.gt: 'zero' is not a int",
        ),
        (
            "    severity: medium\n    action: The child has been missing",
            "    severity: urgent\n    action: The child has been missing",
            "escalations.yaml: rules.4.severity: Input should be 'critical', 'high', 'medium', 'low' or 'info' (got 'urgent')",
        ),
        (
            "    basis: 42 USC 671(a)(34)(A)\n",
            "    basis: 42 USC 671(a)(34)(A)\n    colour: red\n",
            "escalations.yaml: rules.7.colour: Extra inputs are not permitted (got 'red')",
        ),
    ],
)
def test_rule_errors_name_file_path_and_value(
    policy_dir: Path, old: str, new: str, expected: str
) -> None:
    replace_in(policy_dir / "escalations.yaml", old, new)
    found = problems(policy_dir)
    assert any(p.startswith(expected) for p in found), found


def test_overlay_for_unknown_rule(policy_dir: Path) -> None:
    (policy_dir / "jurisdictions" / "WA.yaml").write_text(
        textwrap.dedent(
            """\
            state: WA
            name: Washington
            basis: WAC 388-148-0123
            overrides:
              federal.report-everyone: {due: 6h}
            """
        )
    )
    assert problems(policy_dir) == [
        "jurisdictions/WA.yaml: overrides.federal.report-everyone: no such rule in escalations.yaml"
    ]


def test_overlay_state_must_match_file(policy_dir: Path) -> None:
    replace_in(policy_dir / "jurisdictions" / "KY.yaml", "state: KY", "state: TN")
    assert problems(policy_dir) == [
        "jurisdictions/KY.yaml: state: 'TN' does not match the file name"
    ]


def test_overlay_may_not_redefine_a_federal_rule(policy_dir: Path) -> None:
    replace_in(
        policy_dir / "jurisdictions" / "TX.yaml", "id: tx.notify-court", "id: federal.report-ncmec"
    )
    assert problems(policy_dir) == [
        "jurisdictions/TX.yaml: rules.0.id: duplicate rule id 'federal.report-ncmec' (use overrides to change a federal rule)"
    ]


def test_risk_file_rejects_unknown_factors(policy_dir: Path) -> None:
    replace_in(policy_dir / "risk.yaml", "female: 1", "female: 1\nrace: 1")
    assert problems(policy_dir) == ["risk.yaml: race: Extra inputs are not permitted (got 1)"]


def test_invalid_yaml_is_reported(policy_dir: Path) -> None:
    (policy_dir / "risk.yaml").write_text("tiers: {elevated: 3\n")
    [problem] = problems(policy_dir)
    assert problem.startswith("risk.yaml: (file): not valid YAML")


def test_policy_version_changes_with_any_file(policy_dir: Path) -> None:
    before = load_policy(policy_dir).version
    assert load_policy(policy_dir).version == before
    replace_in(policy_dir / "jurisdictions" / "MO.yaml", "{due: 2h}", "{due: 3h}")
    assert load_policy(policy_dir).version != before


@pytest.mark.parametrize(
    ("text", "hours"),
    [("2h", 2), ("1d12h", 36), ("30m", 0.5), ("now", 0), ("2d", 48)],
)
def test_durations(text: str, hours: float) -> None:
    d = parse_duration(text)
    assert d is not None and d.total_seconds() == hours * 3600


def test_duration_none_and_garbage() -> None:
    assert parse_duration("none") is None
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("cond", "compiled"),
    [
        ({"age": 3}, {"age": 3}),
        ({"age": {"lt": 13}}, {"$lt": {"age": 13}}),
        ({"age": {"gte": 0, "lt": 13}}, {"$and": [{"$gte": {"age": 0}}, {"$lt": {"age": 13}}]}),
        (
            {"party": {"in": ["court", "parent"]}},
            {"$or": [{"party": "court"}, {"party": "parent"}]},
        ),
        ({"party": {"ne": "court"}}, {"$neq": {"party": "court"}}),
        ({"any": [{"a": 1}, {"b": 2}]}, {"$or": [{"a": 1}, {"b": 2}]}),
        ({"all": [{"a": 1}], "b": True}, {"$and": [{"$and": [{"a": 1}]}, {"b": True}]}),
    ],
)
def test_condition_compilation(cond: dict[str, object], compiled: dict[str, object]) -> None:
    assert compile_condition(cond) == compiled


def test_policy_test_command_runs_scenarios_and_routing_cases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services.cli import main

    assert main(["policy", "test", str(ROOT / "rules")]) == 0
    out = capsys.readouterr().out
    assert "routing.yaml: Missouri law enforcement has its own hook" in out
    assert out.strip().endswith("0 failed")


def test_a_wrong_routing_case_fails_the_command(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli import main

    replace_in(
        policy_dir / "tests" / "routing.yaml",
        "receivers: [law-enforcement-mo]",
        "receivers: [law-enforcement]",
    )
    assert main(["policy", "test", str(policy_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL routing.yaml: Missouri law enforcement has its own hook" in out
    assert "expected receivers ['law-enforcement'], got ['law-enforcement-mo']" in out


def test_policy_check_reports_routing_problems(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli import main

    replace_in(policy_dir / "routing.yaml", "receiver: ncmec", "receiver: ncmecc")
    assert main(["policy", "check", str(policy_dir)]) == 1
    err = capsys.readouterr().err
    assert "routing.yaml: route.routes.2.receiver: unknown receiver 'ncmecc'" in err


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            "  federal.report-ncmec: {due: 48h}\n",
            "jurisdictions/MO.yaml: overrides.federal.report-ncmec.due: '48h' can be later than the federal deadline '24h'",
        ),
        (
            "  federal.report-ncmec: {due: none}\n",
            "jurisdictions/MO.yaml: overrides.federal.report-ncmec.due: 'none' can be later than the federal deadline '24h'",
        ),
        (
            "  federal.report-ncmec: {recipients: [caseworker]}\n",
            "jurisdictions/MO.yaml: overrides.federal.report-ncmec.recipients: drops 'supervisor', a recipient of the federal duty",
        ),
        (
            "  federal.trafficking-report: {recipients: [caseworker, supervisor, guardian_ad_litem]}\n",
            "jurisdictions/MO.yaml: overrides.federal.trafficking-report.recipients.2: a duty about a screening or trafficking finding must never reach guardian_ad_litem",
        ),
    ],
)
def test_a_state_overlay_cannot_weaken_a_federal_duty(
    policy_dir: Path, overrides: str, expected: str
) -> None:
    replace_in(
        policy_dir / "jurisdictions" / "MO.yaml",
        "  federal.report-ncmec: {due: 2h}\n",
        overrides,
    )
    assert problems(policy_dir) == [expected]


def test_a_state_may_make_a_federal_duty_stricter(policy_dir: Path) -> None:
    replace_in(
        policy_dir / "jurisdictions" / "MO.yaml",
        "  federal.report-ncmec: {due: 2h}\n",
        "  federal.report-ncmec: {due: 1h, recipients: [caseworker, supervisor, director]}\n",
    )
    [ncmec] = [r for r in load_policy(policy_dir).rules_for("MO") if r.id == "federal.report-ncmec"]
    assert ncmec.recipients == ("caseworker", "supervisor", "director")


@pytest.mark.parametrize("who", ["shelter_network", "court", "parent", "placement_provider"])
def test_a_finding_duty_is_never_routed_to_parties_providers_or_shelters(
    policy_dir: Path, who: str
) -> None:
    replace_in(
        policy_dir / "escalations.yaml",
        "    recipients: [caseworker, supervisor]\n    due: 24h\n    resolved_by:\n      - event: trafficking.law_enforcement_reported",
        f"    recipients: [caseworker, {who}]\n    due: 24h\n    resolved_by:\n      - event: trafficking.law_enforcement_reported",
    )
    assert problems(policy_dir) == [
        f"escalations.yaml: rules.7.recipients.1: a duty about a screening or trafficking finding must never reach {who}"
    ]


def test_minimisation_holds_whatever_the_files_say(policy_dir: Path) -> None:
    """Even a policy that slipped past `policy check` compiles without the forbidden classes."""
    from services.rules.policy import RuleSpec, _compile

    spec = RuleSpec.model_validate(
        {
            "id": "x.after-screening",
            "on": ["screening.completed"],
            "severity": "high",
            "action": "Act on the screening result",
            "basis": "test",
            "recipients": ["caseworker", "shelter_network", "court"],
            "due": "24h",
            "overdue": {"recipients": ["director", "parent"]},
        }
    )
    rule = _compile(spec, DEFAULT_GRACE)
    assert rule.recipients == ("caseworker",)
    assert rule.overdue is not None and rule.overdue.recipients == ("director",)


def test_a_state_overlay_cannot_lower_a_federal_severity(policy_dir: Path) -> None:
    replace_in(
        policy_dir / "jurisdictions" / "MO.yaml",
        "  federal.report-ncmec: {due: 2h}\n",
        "  federal.report-ncmec: {due: 2h, severity: low}\n",
    )
    assert problems(policy_dir) == [
        "jurisdictions/MO.yaml: overrides.federal.report-ncmec.severity: 'low' is lower than the federal duty's 'high'"
    ]


# --- state packs: the policy language they added ------------------------------------------


def overlay(policy_dir: Path, rules: str, overrides: str = "") -> None:
    """Write a Nevada overlay (no shipped one) with these rules and overrides (YAML text)."""
    text = "state: NV\nname: Nevada\nbasis: test\n"
    if overrides:
        text += "overrides:\n" + textwrap.indent(textwrap.dedent(overrides), "  ")
    text += "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    (policy_dir / "jurisdictions" / "NV.yaml").write_text(text)


RULE = """\
- id: nv.test
  on: [missing.opened]
  severity: medium
  action: Test
  basis: test
  recipients: [caseworker]
  due: 24h
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  due_when: [{when: {age: {lt: 13}}, due: soon}]\n",
            "jurisdictions/NV.yaml: rules.0.due_when.0.due: 'soon' is not a deadline: use none, now, immediately",
        ),
        (
            "  due_when: [{when: {race: x}, due: immediately}]\n",
            "jurisdictions/NV.yaml: rules.0.due_when.0.when.race: unknown fact field 'race'",
        ),
        (
            "  due_when: [{when: {age: {lt: 13}}, due: immediately}]\n"
            "  fire_after: {duration: 24h}\n",
            "jurisdictions/NV.yaml: rules.0.due_when: a rule with fire_after fires on the clock, with no event to test: use due",
        ),
        (
            "  fire_after: {duration: 24h, local_time: '06:00'}\n",
            "jurisdictions/NV.yaml: rules.0.fire_after: give either duration or local_time",
        ),
        (
            "  fire_after: {start: last_seen_at}\n",
            "jurisdictions/NV.yaml: rules.0.fire_after: give either duration or local_time",
        ),
        (
            "  fire_after: {local_time: '24:00'}\n",
            "jurisdictions/NV.yaml: rules.0.fire_after.local_time: '24:00' is not a time of day: use HH:MM, 00:00 to 23:59",
        ),
        (
            "  fire_after: {duration: 2 business days}\n",
            "jurisdictions/NV.yaml: rules.0.fire_after.duration: '2 business days' is not a delay: use an elapsed time like 24h or calendar days like 7d",
        ),
        (
            "  cancel_on: [missing.located]\n"
            "  resolved_by: [{event: missing.located, since: start}]\n",
            "jurisdictions/NV.yaml: rules.0.cancel_on.0: 'missing.located' discharges this rule only since its start (resolved_by.0); cancel_on would cancel it whenever it occurs",
        ),
        (
            "  resolved_by: [{event: missing.located, since: opened}]\n",
            "jurisdictions/NV.yaml: rules.0.resolved_by.0.since: Input should be 'any' or 'start' (got 'opened')",
        ),
    ],
)
def test_state_pack_language_errors_name_file_path_and_value(
    policy_dir: Path, extra: str, expected: str
) -> None:
    overlay(policy_dir, RULE + extra)
    found = problems(policy_dir)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_state_may_not_make_a_conditional_federal_deadline_later(policy_dir: Path) -> None:
    overlay(
        policy_dir,
        RULE,
        overrides="""\
        federal.report-ncmec:
          due: 2h
          due_when: [{when: {age: {gte: 16}}, due: 2d}, {when: {age: {lt: 13}}, due: immediately}]
        policy.supervisor-staffing:
          due_when: [{when: {age: {lt: 13}}, due: immediately}]
        """,
    )
    assert problems(policy_dir) == [
        "jurisdictions/NV.yaml: overrides.federal.report-ncmec.due_when.0.due: '2d' can be later than the federal deadline '24h'",
        "jurisdictions/NV.yaml: overrides.policy.supervisor-staffing.due_when: a rule with fire_after fires on the clock, with no event to test: use due",
    ]


def test_a_disclosed_crime_is_a_finding_never_sent_to_parties(policy_dir: Path) -> None:
    overlay(
        policy_dir,
        RULE.replace("[missing.opened]", "[return.crime_disclosed]").replace(
            "[caseworker]", "[caseworker, parent]"
        ),
    )
    assert problems(policy_dir) == [
        "jurisdictions/NV.yaml: rules.0.recipients.1: a duty about a screening or trafficking finding must never reach parent"
    ]


def test_state_pack_language_compiles(policy_dir: Path) -> None:
    overlay(
        policy_dir,
        RULE
        + "  due_when: [{when: {immediate_risk_incapacity: true}, due: immediately}]\n"
        + RULE.replace("nv.test", "nv.week")
        + "  fire_after: {duration: 7d}\n"
        + RULE.replace("nv.test", "nv.hours")
        + "  fire_after: {duration: 36h}\n"
        + RULE.replace("nv.test", "nv.morning")
        + "  fire_after: {local_time: '06:00', start: last_seen_at}\n"
        + "  resolved_by: [{event: missing.staffing_held, since: start}]\n",
    )
    rules = {r.id: r for r in load_policy(policy_dir).rules_for("NV")}
    [(when, due)] = rules["nv.test"].due_when
    assert when == {"immediate_risk_incapacity": True} and due.kind == "immediately"
    week, hours, morning = rules["nv.week"], rules["nv.hours"], rules["nv.morning"]
    assert week.fire is not None and week.fire.days == 7 and week.fire_after == timedelta(days=7)
    assert hours.fire is not None and hours.fire.elapsed == timedelta(hours=36)
    assert morning.fire is not None and morning.fire.local_time == time(6, 0)
    assert morning.fire_after is None and morning.fire_start == "last_seen_at"
    assert morning.resolved_by[0].since == "start"


def test_the_shipped_state_packs_cite_their_sources() -> None:
    """Every state rule names a source its overlay cites; where the source sets no deadline
    the rule says the deadline is the agency's default."""
    policy = load_policy(ROOT / "rules")
    assert {"FL", "GA", "KY", "MO", "TX", "WA"} <= set(policy.overlays)
    federal = {r.id for r in policy.rules}
    for path in sorted((ROOT / "rules" / "jurisdictions").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        sources = [
            part.split("(")[0].strip() for part in re.split("[;,]", raw["basis"]) if len(part) > 8
        ]
        assert sources, path.name
        for rule in policy.rules_for(raw["state"]):
            if rule.id in federal:
                continue
            assert any(s in rule.basis for s in sources), (path.name, rule.id, rule.basis)
            if rule.id.startswith("mo.notify-"):
                assert "agency default, not statute" in rule.basis


@pytest.mark.parametrize(
    ("on", "extra"),
    [
        (["*"], {"when": {"event_type": "return.crime_disclosed"}}),
        (["missing.located"], {"when": {"trafficking_status": {"in": ["suspected"]}}}),
        (
            ["missing.located"],
            {
                "resolved_by": [
                    {"event": "screening.completed", "when": {"result": "clear_concern"}}
                ]
            },
        ),
    ],
)
def test_a_finding_can_not_reach_parties_through_any_event_or_a_condition(
    on: list[str], extra: dict[str, object]
) -> None:
    """A rule on any event, or with a condition on a finding field, may tell of a finding: the
    compiled rule never reaches court, parents and the other parties."""
    from services.rules.policy import RuleSpec, _compile

    spec = RuleSpec.model_validate(
        {
            "id": "x.sneaky",
            "on": on,
            "severity": "high",
            "action": "Tell the court",
            "basis": "test",
            "recipients": ["caseworker", "court", "parent"],
            "due": "24h",
            **extra,
        }
    )
    assert _compile(spec, DEFAULT_GRACE).recipients == ("caseworker",)
