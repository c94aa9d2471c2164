"""`policy check` proves tenancy: each way one agency's escalation could reach another agency's
people or receivers, and each agency without configuration, is a problem naming file and path."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from services.cli import TenancyFiles, main, policy_problems
from services.notify.config import RoutingInvalid, load_routing

ROOT = Path(__file__).resolve().parents[2]

ROUTING = """\
version: 1
receivers:
  - name: ncmec
    shared: true
    webhook: {url: "http://127.0.0.1:1/ncmec"}
route:
  receiver: caseworker
  routes:
    - match: {recipient_class: ncmec}
      receiver: ncmec
"""


def agency(agency_id: str, receivers: str, routes: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        version: 1
        agency_id: {agency_id}
        name: Agency {agency_id}
        time_zone: America/Chicago
        contact_24_7: "+1-555-0100"
        receivers:
        """
        )
        + textwrap.indent(textwrap.dedent(receivers), "  ")
        + ("routes:\n" + textwrap.indent(textwrap.dedent(routes), "  ") if routes else "")
    )


CASEWORKER = "- name: caseworker\n  email: {to_staff: caseworker, fallback: a@a.example}\n"


def policy(tmp_path: Path, routing: str = ROUTING, **agencies: str) -> Path:
    (tmp_path / "agencies").mkdir(parents=True, exist_ok=True)
    (tmp_path / "routing.yaml").write_text(routing)
    for name, text in agencies.items():
        (tmp_path / "agencies" / f"{name.replace('_', '-')}.yaml").write_text(text)
    return tmp_path / "routing.yaml"


def problems(path: Path) -> list[str]:
    with pytest.raises(RoutingInvalid) as info:
        load_routing(path)
    return [str(p) for p in info.value.problems]


def test_an_agencys_route_to_another_agencys_receiver_is_refused(tmp_path: Path) -> None:
    a = agency(
        "agency-a",
        CASEWORKER,
        "- match: {severity: critical}\n  receiver: b-desk\n  continue: true\n",
    )
    b = agency("agency-b", CASEWORKER + "- name: b-desk\n  email: {to: desk@b.example}\n")
    assert problems(policy(tmp_path, agency_a=a, agency_b=b)) == [
        "agencies/agency-a.yaml: routes.0.receiver: receiver 'b-desk' is agency agency-b's: an"
        " agency's routes reach only its own receivers and shared ones"
    ]


def test_a_receiver_the_shared_tree_names_must_be_every_agencys(tmp_path: Path) -> None:
    a = agency("agency-a", CASEWORKER)
    b = agency("agency-b", "- name: desk\n  email: {to: desk@b.example}\n")
    assert problems(policy(tmp_path, agency_a=a, agency_b=b)) == [
        "agencies/agency-b.yaml: receivers: no receiver 'caseworker', which routing.yaml route"
        " names"
    ]


def test_shared_receivers_never_name_people_and_agencies_never_declare_shared_ones(
    tmp_path: Path,
) -> None:
    routing = (
        ROUTING.replace(
            '    webhook: {url: "http://127.0.0.1:1/ncmec"}\n',
            '    webhook: {url: "http://127.0.0.1:1/ncmec"}\n'
            "  - name: desk\n    email: {to_role: director}\n",
        ).replace("staff", "staff")
        + "staff: {W-1: {name: Alex}}\n"
    )
    a = agency(
        "agency-a", CASEWORKER + "- name: ncmec\n  shared: true\n  email: {to: x@a.example}\n"
    )
    found = problems(policy(tmp_path, routing, agency_a=a))
    assert (
        "routing.yaml: receivers.1.shared: routing.yaml declares only receivers every agency"
        " shares: mark it `shared: true`, or declare it in each agencies/<agency_id>.yaml" in found
    )
    assert any(
        p.startswith("routing.yaml: receivers.1.email: a shared receiver serves every")
        for p in found
    )
    assert any(
        p.startswith("routing.yaml: staff: people live in the people registry") for p in found
    )
    assert (
        "agencies/agency-a.yaml: receivers.1.shared: only routing.yaml declares shared"
        " receivers" in found
    )
    assert "agencies/agency-a.yaml: receivers.1.name: 'ncmec' is a shared receiver's name" in found


def test_an_agency_file_is_named_for_its_agency_and_has_a_real_zone(tmp_path: Path) -> None:
    a = agency("agency-a", CASEWORKER)
    assert problems(policy(tmp_path / "named", agency_b=a)) == [
        "agencies/agency-b.yaml: agency_id: must be the file's name ('agency-b')"
    ]
    zoned = a.replace("America/Chicago", "Mars/Olympus")
    found = problems(policy(tmp_path / "zoned", agency_a=zoned))
    assert any(
        p.startswith("agencies/agency-a.yaml: time_zone: Value error, not an IANA time zone")
        for p in found
    )


def test_people_references_keys_and_tokens_are_checked_against_the_registry(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(ROOT / "rules", directory)
    mo = directory / "agencies" / "mo-jackson.yaml"
    mo.write_text(
        mo.read_text()
        .replace("{to_role: director}", "{to_person: D-2}")  # El Paso's director
        .replace("to_schedule: on-call", "to_person: NOBODY")
    )
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        (ROOT / "deploy" / "local" / "api-keys.yaml")
        .read_text()
        .replace("agency_id: tx-el-paso", "agency_id: tx-harris")
    )
    users = ROOT / "deploy" / "local" / "users.yaml"
    found = policy_problems(directory, TenancyFiles(users=users, api_keys=keys))
    assert found == [
        f"{directory}/agencies/mo-jackson.yaml: receivers.2.email.to_person: 'D-2' is another"
        " agency's person: an agency names only its own people",
        f"{directory}/agencies/mo-jackson.yaml: receivers.3.sms.to_person: 'NOBODY' is not in"
        " the people registry",
        f"{keys}: keys.1.agency_id: an API key of agency 'tx-harris', which has no agency file",
    ]


def test_the_shipped_demo_passes_every_cross_check(capsys: pytest.CaptureFixture[str]) -> None:
    local = ROOT / "deploy" / "local"
    code = main(
        [
            "policy",
            "check",
            str(ROOT / "rules"),
            "--users",
            str(local / "users.yaml"),
            "--api-keys",
            str(local / "api-keys.yaml"),
            "--tokens",
            str(local / "tokens.yaml"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "cross-checked against:" in out and "users.yaml" in out


@pytest.mark.parametrize(
    "route",
    [
        "- receiver: caseworker\n",  # catch-all, no continue
        "- match: {recipient_class: ncmec}\n  receiver: caseworker\n",
        "- match: {recipient_class: ncmec, county: Jackson}\n  receiver: caseworker\n",
        "- match: {rule_id: federal.report-ncmec}\n  receiver: caseworker\n",
        "- match_re: {rule_id: '.+'}\n  receiver: caseworker\n",
        "- match_re: {state: '[A-Z]{2}', county: '.+'}\n  receiver: caseworker\n",
        "- match: {recipient_class: ncmec}\n  receiver: caseworker\n  continue: true\n",
    ],
)
def test_an_agency_route_may_add_receivers_never_take_a_shared_one_away(
    tmp_path: Path, route: str
) -> None:
    """Whatever an agency's routes match on, every shared receiver routing.yaml's tree reaches
    (here NCMEC) is still reached: the agency's routes can only add its own receivers."""
    routing = load_routing(policy(tmp_path, agency_a=agency("agency-a", CASEWORKER, route)))
    labels = {
        "severity": "high",
        "rule_id": "federal.report-ncmec",
        "recipient_class": "ncmec",
        "agency": "agency-a",
        "state": "MO",
        "county": "Jackson",
        "status": "firing",
    }
    reached = [node.receiver for node in routing.match(labels)]
    assert "ncmec" in reached
    assert len(reached) == len(set(reached))


def test_an_agency_webhook_never_signs_with_a_shared_receivers_key(tmp_path: Path) -> None:
    routing = ROUTING.replace(
        'webhook: {url: "http://127.0.0.1:1/ncmec"}',
        'webhook: {url: "http://127.0.0.1:1/ncmec", secret_env: CAREALERT_WEBHOOK_SECRET}',
    )
    own = '- name: case-system\n  webhook: {url: "http://127.0.0.1:1/a", secret_env: CAREALERT_WEBHOOK_SECRET}\n'
    assert problems(policy(tmp_path, routing, agency_a=agency("agency-a", CASEWORKER + own))) == [
        "agencies/agency-a.yaml: receivers.1.webhook.secret_env: CAREALERT_WEBHOOK_SECRET signs"
        " shared receivers' webhooks: give this agency's webhook a key of its own"
    ]


def test_a_receiver_token_names_a_receiver_it_can_acknowledge_for(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "version: 1\ntokens:\n"
        + "".join(
            f"  - {{sha256: '{'abcd'[i] * 64}', agency_id: '{agency}', role: receiver,"
            f" receiver: {receiver}}}\n"
            for i, (agency, receiver) in enumerate(
                [
                    ("*", "ncmec"),
                    ("*", "caseworker"),
                    ("mo-jackson", "caseworker"),
                    ("mo-jackson", "nope"),
                ]
            )
        )
    )
    found = policy_problems(ROOT / "rules", TenancyFiles(tokens=tokens))
    assert found == [
        f"{tokens}: tokens.1.receiver: 'caseworker' is not a shared receiver",
        f"{tokens}: tokens.3.receiver: 'nope' is not a receiver of mo-jackson",
    ]
