"""Routing, minimisation and scheduling: pure logic of notify, table-driven."""

from __future__ import annotations

import json
import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.escalations import Escalation, Subject
from services.common.ladder import climbed
from services.notify.acks import (
    AckSubject,
    ack_token,
    ack_url,
    check_ack_token,
    legacy_ack_token,
)
from services.notify.addresses import NoContact, resolve_address
from services.notify.agencies import AgencyView
from services.notify.config import RoutingInvalid, load_routing
from services.notify.records import OpenEntry, notification_id
from services.notify.retry import RetryPolicy
from services.notify.schedule import due_steps, make_plan, open_entry
from services.notify.templates import Templates, age_band, context_for, sample_escalation

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def escalation(**kw: Any) -> Escalation:
    base: dict[str, Any] = {
        "escalation_id": "e" * 32,
        "status": "firing",
        "rule_id": "federal.report-ncmec",
        "policy_version": "v",
        "severity": "high",
        "action": "Report the missing child to NCMEC",
        "basis": "42 USC 671(a)(35)(B)",
        "agency_id": "demo-agency",
        "child_id": "C-100234",
        "episode_id": "E-1",
        "jurisdiction": {"state": "MO", "county": "Jackson"},
        "recipients": ["caseworker", "supervisor"],
        "due_at": T0 + timedelta(hours=2),
        "evidence": {
            "age": 15,
            "risk_tier": "high",
            "setting": "group_home",
            "result": "clear_concern",
        },
        "triggered_by": ["ev-1"],
        "created_at": T0,
        "caseworker_id": "W-1",
        "supervisor_id": "S-1",
        "subject": Subject(
            name="Jane Q Doe",
            aliases=("JJ",),
            date_of_birth="2011-05-01",
            sex="female",
            physical_description="5 ft 4",
            clothing="red hoodie",
            photo_url="https://photos.invalid/p.jpg",
            last_seen_at=T0 - timedelta(hours=1),
            last_seen_location="bus station",
            places_frequented=("mall",),
            immediate_risks=("medical_need", "suspected_trafficking"),
        ),
    }
    base.update(kw)
    return Escalation.model_validate(base)


@pytest.fixture(scope="module")
def routing() -> Any:
    return load_routing(ROOT / "rules" / "routing.yaml")


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(ROOT / "rules" / "templates")


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "severity", "state", "expected"),
    [
        (["caseworker", "supervisor"], "high", "MO", ["caseworker", "supervisor"]),
        (
            ["law_enforcement", "shelter_network"],
            "critical",
            "MO",
            ["law-enforcement-mo", "shelter-network"],
        ),
        (["law_enforcement"], "high", "KY", ["law-enforcement"]),
        (["ncmec"], "high", "MO", ["ncmec"]),
        (["director"], "critical", "MO", ["director", "on-call"]),
        (["director"], "high", "MO", ["director"]),
        (["court", "parent", "guardian_ad_litem"], "medium", "TX", ["parties"]),
        (["placement_provider"], "low", "MO", ["placement-provider"]),
        (["on_call"], "info", "MO", ["on-call"]),
    ],
)
def test_routes(
    routing: Any, recipients: list[str], severity: str, state: str, expected: list[str]
) -> None:
    esc = escalation(recipients=recipients, severity=severity, jurisdiction={"state": state})
    assert [t.receiver for t in routing.route(esc)] == expected


def test_route_inherits_defaults(routing: Any) -> None:
    [target] = routing.route(escalation(recipients=["caseworker"]))
    assert target.route.repeat_interval == timedelta(hours=4)
    assert target.route.ack_timeout == timedelta(hours=1)
    assert target.route.send_resolved is True


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
    version: 1
    receivers:
      - name: a
        shared: true
        email: {to: a@x.example}
      - name: b
        shared: true
        webhook: {url: "http://127.0.0.1:1/b"}
    route:
      receiver: a
      routes:
"""


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        (
            "        - match: {recipient_class: caseworker}\n          receiver: nope\n",
            "routing.yaml: route.routes.0.receiver: unknown receiver 'nope': not shared, and no agency declares it",
        ),
        (
            "        - match: {recipient_class: caseworkers}\n          receiver: b\n",
            "routing.yaml: route.routes.0.match.recipient_class: 'caseworkers' is not a known recipient class",
        ),
        (
            "        - match: {severity: urgent}\n          receiver: b\n",
            "routing.yaml: route.routes.0.match.severity: 'urgent' is not a known severity",
        ),
        (
            "        - match: {colour: red}\n          receiver: b\n",
            "routing.yaml: route.routes.0.match.colour: unknown label 'colour' (labels: severity, rule_id, recipient_class, agency, state, county, status)",
        ),
        (
            "        - receiver: b\n        - match: {severity: high}\n          receiver: a\n",
            "routing.yaml: route.routes.1: unreachable: routes.0 matches everything and does not continue",
        ),
        (
            "        - match_re: {rule_id: '('}\n          receiver: b\n",
            "routing.yaml: route.routes.0.match_re.rule_id: bad regex: missing ), unterminated subpattern at position 0",
        ),
        (
            "        - match: {severity: high}\n          receiver: b\n          ack_timeout: soon\n",
            "routing.yaml: route.routes.0.ack_timeout: 'soon' is not a duration like 2h, 1d12h, 30m, now or none",
        ),
    ],
)
def test_routing_errors_are_exact(tmp_path: Path, routes: str, problem: str) -> None:
    path = write(tmp_path, BASE + textwrap.indent(routes, "    "))
    with pytest.raises(RoutingInvalid) as info:
        load_routing(path)
    assert [str(p) for p in info.value.problems] == [problem]


def test_receiver_needs_a_channel_and_unique_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        receivers:
          - name: a
            shared: true
          - name: a
            shared: true
            email: {to: a@x.example, to_person: W-1}
        route: {receiver: a}
    """,
    )
    with pytest.raises(RoutingInvalid) as info:
        load_routing(path)
    assert [str(p) for p in info.value.problems] == [
        "routing.yaml: receivers.0: a receiver needs email, webhook or sms",
        "routing.yaml: receivers.1.name: duplicate receiver 'a'",
        "routing.yaml: receivers.1.email: give exactly one of to, to_staff, to_person, to_role,"
        " to_schedule",
        "routing.yaml: receivers.1.email: a shared receiver serves every agency and can not name"
        " an agency's people (to_staff, to_person, to_role, to_schedule, fallback_role):"
        " declare it in agencies/<agency_id>.yaml",
    ]


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nreceivers: []\nroute: {receiver: a, colour: red}\n")
    with pytest.raises(RoutingInvalid) as info:
        load_routing(path)
    assert "routing.yaml: route.colour: Extra inputs are not permitted (got 'red')" in [
        str(p) for p in info.value.problems
    ]


# --- minimisation ----------------------------------------------------------------------------


DEMO_AGENCY = AgencyView(
    "demo-agency", "Demo County Children's Services", "America/Chicago", "+1-555-0100"
)


def rendered(
    templates: Templates, recipient_class: str, esc: Escalation, photo: bool = False
) -> str:
    ctx = context_for(
        recipient_class,
        esc,
        agency=DEMO_AGENCY,
        ack_url="http://ack",
        now=T0,
        shelter_photo=photo,
    )
    msg = templates.render(recipient_class, ctx)
    return f"{msg.subject}\n{msg.body}\n{msg.data}"


def trafficking_escalation() -> Escalation:
    return escalation(
        rule_id="federal.trafficking-report",
        action="Report the identified sex-trafficking victim to law enforcement",
        basis="42 USC 671(a)(34)(A)",
        recipients=["shelter_network"],
    )


@pytest.mark.parametrize(
    "forbidden",
    [
        "foster",
        "Foster",
        "trafficking",
        "671",
        "medical",
        "clear_concern",
        "group_home",
        "high",
        "Doe",
        "C-100234",
        "demo-agency",
        "2011-05-01",
        "bus station",
        "photos.invalid",
    ],
)
def test_shelter_never_sees_foster_trafficking_or_medical(
    templates: Templates, forbidden: str
) -> None:
    text = rendered(templates, "shelter_network", trafficking_escalation())
    assert forbidden not in text


def test_shelter_gets_first_name_age_band_and_number(templates: Templates) -> None:
    text = rendered(templates, "shelter_network", trafficking_escalation())
    assert "Jane" in text and "15-17" in text and "+1-555-0100" in text


def test_shelter_photo_only_where_policy_allows(templates: Templates) -> None:
    assert "photos.invalid" not in rendered(templates, "shelter_network", escalation(), photo=False)
    assert "photos.invalid" in rendered(templates, "shelter_network", escalation(), photo=True)


def test_law_enforcement_gets_the_description_not_the_case(templates: Templates) -> None:
    text = rendered(templates, "law_enforcement", escalation())
    for needed in (
        "Jane Q Doe",
        "JJ",
        "2011-05-01",
        "red hoodie",
        "bus station",
        "mall",
        "photos.invalid",
        "medical_need",
        "+1-555-0100",
    ):
        assert needed in text
    for forbidden in ("clear_concern", "group_home", "risk_tier", "671(a)"):
        assert forbidden not in text


@pytest.mark.parametrize("recipient_class", ["court", "guardian_ad_litem", "attorney", "parent"])
def test_parties_never_see_screening_results(templates: Templates, recipient_class: str) -> None:
    text = rendered(templates, recipient_class, escalation())
    assert "clear_concern" not in text
    assert "risk" not in text.lower()
    assert "C-100234" in text


@pytest.mark.parametrize("recipient_class", ["supervisor", "director", "placement_provider"])
def test_management_and_providers_get_no_narrative_or_screening(
    templates: Templates, recipient_class: str
) -> None:
    text = rendered(templates, recipient_class, escalation())
    assert "clear_concern" not in text
    assert "red hoodie" not in text and "Jane" not in text


def test_caseworker_gets_everything(templates: Templates) -> None:
    text = rendered(templates, "caseworker", escalation())
    for needed in ("clear_concern", "Jane Q Doe", "42 USC 671(a)(35)(B)", "high", "http://ack"):
        assert needed in text


@pytest.mark.parametrize(
    ("age", "band"),
    [(None, "unknown age"), (9, "under 12"), (12, "12-14"), (16, "15-17"), (18, "18 or older")],
)
def test_age_band(age: int | None, band: str) -> None:
    assert age_band(age) == band


# --- plan ------------------------------------------------------------------------------------


def test_ids_and_tokens() -> None:
    assert notification_id("e", "r", "0") == notification_id("e", "r", "0")
    assert (
        len(
            {
                notification_id("e", "r", "0"),
                notification_id("e", "r", "r1"),
                notification_id("e", "s", "0"),
            }
        )
        == 3
    )
    now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    expires = int((now + timedelta(days=7)).timestamp())
    cw = AckSubject("e1", "caseworker")
    token = ack_token("k" * 16, cw, expires)
    assert check_ack_token("k" * 16, cw, token, now) == "ok"
    assert check_ack_token("k" * 16, AckSubject("e1", "supervisor"), token, now) == "invalid"
    assert check_ack_token("k" * 16, AckSubject("e2", "caseworker"), token, now) == "invalid"
    assert check_ack_token("other-secret-16", cw, token, now) == "invalid"
    later = now + timedelta(days=7, seconds=1)
    assert check_ack_token("k" * 16, cw, token, later) == "expired"
    # A longer expiry written into the token does not match its HMAC.
    forged = f"{expires + 86400}.{token.partition('.')[2]}"
    assert check_ack_token("k" * 16, cw, forged, later) == "invalid"
    for junk in ("", "é" * 40, "abc", "1.2.3", "99999999999999999999.x", "\x00"):
        assert check_ack_token("k" * 16, cw, junk, now) == "invalid"
    # A link to a person binds the person: it is neither another person's nor the receiver's.
    alex = AckSubject("e1", "caseworker", "W-1")
    personal = ack_token("k" * 16, alex, expires)
    assert check_ack_token("k" * 16, alex, personal, now) == "ok"
    for other in (
        AckSubject("e1", "caseworker", "W-2"),
        AckSubject("e1", "caseworker", "W-1\n"),
        AckSubject("e1", "caseworker"),
        # No id can be chosen to read as another subject (the signed text is a JSON array).
        AckSubject("e1", "caseworker:person=W-1"),
        AckSubject("e1:caseworker", "person=W-1"),
    ):
        assert check_ack_token("k" * 16, other, personal, now) == "invalid", other
    # A link the release before sent (escalation:receiver:expiry) is still taken, as legacy,
    # for a subject without a person only, and expires as it did.
    old = legacy_ack_token("k" * 16, "e1", "caseworker", expires)
    assert check_ack_token("k" * 16, cw, old, now) == "legacy"
    assert check_ack_token("k" * 16, alex, old, now) == "invalid"
    assert check_ack_token("k" * 16, cw, old, later) == "expired"
    assert (
        ack_url("http://h:1/", "k" * 16, AckSubject("e1", "a b"), now + timedelta(days=7))
        == f"http://h:1/v1/escalations/e1/ack?receiver=a%20b&token={ack_token('k' * 16, AckSubject('e1', 'a b'), expires)}"
    )
    assert "&person=W-1&token=" in ack_url("http://h:1", "k" * 16, alex, now)


def test_backoff_grows_with_jitter_and_caps() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=1, factor=2, max_s=10, jitter=0.2)
    rng = random.Random(1)
    waits = [policy.backoff(a, rng) for a in range(1, 8)]
    assert 0.8 <= waits[0] <= 1.2 and 1.6 <= waits[1] <= 2.4 and 3.2 <= waits[2] <= 4.8
    assert all(w <= 12 for w in waits)


@pytest.mark.parametrize(
    ("classes", "levels", "out"),
    [
        (("caseworker",), 1, ("caseworker", "supervisor")),
        (("caseworker",), 2, ("caseworker", "supervisor", "director")),
        (("caseworker", "supervisor"), 1, ("caseworker", "supervisor", "director")),
        (("law_enforcement",), 1, ("law_enforcement", "caseworker")),
        (("director",), 3, ("director",)),
    ],
)
def test_widen_classes(classes: tuple[str, ...], levels: int, out: tuple[str, ...]) -> None:
    assert climbed(classes, levels) == out


def test_schedule_of_reminders_and_escalation(routing: Any) -> None:
    entry = open_entry(escalation(recipients=["caseworker"]), 0, T0, routing)

    def due(after: timedelta) -> list[tuple[str, str]]:
        return [(d.step, d.target.receiver) for d in due_steps(entry, T0 + after)]

    assert due(timedelta(minutes=59)) == []
    assert due(timedelta(hours=1)) == [("e1", "supervisor")]
    assert due(timedelta(hours=4)) == [
        ("r1", "caseworker"),
        ("e1", "supervisor"),
        ("e2", "director"),
    ]
    entry.acked_by = "caseworker"
    assert due(timedelta(hours=9)) == []


def test_reminders_stop_at_the_cap(routing: Any) -> None:
    entry = open_entry(escalation(recipients=["caseworker"]), 0, T0, routing)
    reminders = [d.step for d in due_steps(entry, T0 + timedelta(days=30)) if d.step[0] == "r"]
    assert reminders == [f"r{i}" for i in range(1, 7)]


def test_the_plan_is_stored_and_an_entry_from_an_older_release_is_planned_again(
    routing: Any,
) -> None:
    """The schedule reads the plan stored with the entry (no routing per tick). The stored
    form keeps `targets` as [receiver, class] pairs, so the release before reads it; an entry
    that release wrote (no plan) loads, owes nothing until planned, and is planned for the
    receivers it told."""
    entry = open_entry(escalation(recipients=["caseworker"]), 3, T0, routing)
    stored = json.loads(entry.to_bytes())
    assert stored["targets"] == [["caseworker", "caseworker"]]
    assert stored["first_sent_at"] == "2026-11-24T02:00:00+00:00"
    again = OpenEntry.model_validate_json(entry.to_bytes())
    assert again == entry and again.plan is not None
    assert [w.receiver for w in again.plan.widenings] == ["supervisor", "director"]
    del stored["plan"]
    old = OpenEntry.model_validate_json(json.dumps(stored))
    assert old.plan is None and due_steps(old, T0 + timedelta(hours=4)) == []
    assert make_plan(old.escalation, routing, old.targets) == entry.plan


def test_addresses_are_looked_up_in_the_escalations_agency_only(routing: Any) -> None:
    """The same staff id in two agencies is two people: an escalation reaches its own agency's
    person, never the other's; then the receiver's fallbacks."""
    from services.common.people import People, Person

    people = People(
        [
            Person(
                id="W-1",
                agency_id="mo-jackson",
                name="A",
                email="a@mo.example",
                roles=("caseworker",),
            ),
            Person(
                id="W-1",
                agency_id="tx-el-paso",
                name="B",
                email="b@tx.example",
                roles=("caseworker",),
            ),
            Person(
                id="S-1",
                agency_id="mo-jackson",
                name="C",
                sms="+15555550102",
                roles=("supervisor", "on_call"),
            ),
            Person(
                id="D-1",
                agency_id="mo-jackson",
                name="D",
                email="d@mo.example",
                roles=("director",),
            ),
        ]
    )

    def address(receiver: str, **kw: Any) -> tuple[str, str, str | None]:
        esc = escalation(**kw)
        spec = routing.receiver(esc.agency_id, receiver)
        found = resolve_address(spec, esc, people)
        return found.channel, found.address, found.person_id

    assert address("caseworker", agency_id="mo-jackson") == ("email", "a@mo.example", "W-1")
    assert address("caseworker", agency_id="tx-el-paso") == ("email", "b@tx.example", "W-1")
    assert address("caseworker", agency_id="mo-jackson", caseworker_id="W-9") == (
        "email",
        "intake@mo-jackson.example",
        None,
    )
    # The supervisor S-1 has no email: the role's first person with one, else the mailbox.
    assert address("supervisor", agency_id="mo-jackson")[1] == "supervisors@mo-jackson.example"
    assert address("director", agency_id="mo-jackson") == ("email", "d@mo.example", "D-1")
    assert address("on-call", agency_id="mo-jackson") == ("sms", "+15555550102", "S-1")
    with pytest.raises(NoContact):
        address("director", agency_id="tx-el-paso")  # no director on file there
    assert routing.receiver("mo-jackson", "ncmec").webhook is not None
    assert routing.receiver("unknown-agency", "caseworker") is None
    assert routing.receiver("unknown-agency", "ncmec") is not None


def test_policy_check_renders_every_template_and_names_the_undefined_variable(
    tmp_path: Path,
) -> None:
    import shutil

    from services.notify.templates import check_templates

    shutil.copytree(ROOT / "rules" / "templates", tmp_path / "templates")
    assert check_templates(tmp_path / "templates") == []
    (tmp_path / "templates" / "shelter.txt.j2").write_text(
        "Subject: A youth is missing\n\nCall {{ agency_contact }} about {{ foster_status }}.\n"
    )
    assert check_templates(tmp_path / "templates") == [
        "templates/shelter.txt.j2: firing for shelter_network: 'foster_status' is undefined",
        "templates/shelter.txt.j2: resolved for shelter_network: 'foster_status' is undefined",
    ]


def test_the_shelter_context_survives_a_blank_name_and_a_strange_age() -> None:
    esc = Escalation.model_validate(
        {
            **sample_escalation("firing").model_dump(mode="json"),
            "subject": {"name": "   "},
            "evidence": {"age": "fifteen"},
        }
    )
    ctx = context_for("shelter_network", esc, agency=DEMO_AGENCY, ack_url=None, now=T0)
    assert ctx["first_name_or_alias"] == "unknown" and ctx["age_band"] == "unknown age"
