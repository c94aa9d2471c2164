"""The rendered messages, audience by audience: plain titles, times on the agency's clock with
zone and offset, what an overdue duty was and how late it is, what police and shelters need
to act, and only what each audience may see (docs/domain.md, "Who gets what")."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.escalations import Escalation
from services.notify.agencies import AgencyView, unknown_agency
from services.notify.templates import (
    AUDIENCE,
    WIDTH,
    Fields,
    Message,
    Paragraph,
    Templates,
    blocks,
    check_templates,
    context_for,
    wrap,
)

ROOT = Path(__file__).resolve().parents[2]
# Wed 25 Nov 2026, 01:20 in Missouri; the duty is due at 03:10 CST.
T0 = datetime(2026, 11, 25, 7, 20, tzinfo=UTC)
DUE = datetime(2026, 11, 25, 9, 10, tzinfo=UTC)
MO = AgencyView(
    "mo-jackson", "Jackson County Children's Division", "America/Chicago", "+1-816-555-0100"
)
ELPASO = AgencyView(
    "tx-el-paso", "El Paso County Child Protective Services", "America/Denver", "+1-915-555-0100"
)
ACK = (
    "https://notify.example.org/v1/escalations/" + "e" * 32 + "/ack?receiver=caseworker"
    "&person=W-1&token=1796000000." + "0123456789abcdef" * 4
)


def escalation(**kw: Any) -> Escalation:
    base: dict[str, Any] = {
        "escalation_id": "e" * 32,
        "status": "firing",
        "rule_id": "federal.report-ncmec",
        "policy_version": "v",
        "severity": "high",
        "action": "Report the missing child to NCMEC",
        "basis": "42 USC 671(a)(35)(B)",
        "agency_id": "mo-jackson",
        "child_id": "C-100234",
        "episode_id": "E-1",
        "jurisdiction": {"state": "MO", "county": "Jackson"},
        "recipients": ["caseworker", "supervisor"],
        "due_at": DUE,
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
        "subject": {
            "name": "Jane Q Doe",
            "aliases": ["JJ"],
            "date_of_birth": "2011-05-01",
            "sex": "female",
            "physical_description": "5 ft 4, slim",
            "clothing": "red hoodie",
            "photo_url": "https://photos.example.org/p/C-100234.jpg",
            "last_seen_at": datetime(2026, 11, 25, 5, 0, tzinfo=UTC),
            "last_seen_location": "bus station",
            "places_frequented": ["mall"],
            "immediate_risks": ["medical_need", "suspected_trafficking"],
        },
    }
    base.update(kw)
    return Escalation.model_validate(base)


def overdue(**kw: Any) -> Escalation:
    """The engine's overdue step of the NCMEC report: no due_at, evidence.was_due_at."""
    esc = escalation(**kw)
    return esc.model_copy(
        update={
            "escalation_id": "f" * 32,
            "rule_id": f"{esc.rule_id}.overdue",
            "severity": "critical",
            "action": f"OVERDUE: {esc.action}",
            "recipients": ("caseworker", "supervisor", "director"),
            "due_at": None,
            "evidence": {
                **esc.evidence,
                "original_escalation_id": esc.escalation_id,
                "was_due_at": DUE.isoformat(),
            },
        }
    )


def police_alert(**kw: Any) -> Escalation:
    return escalation(
        rule_id="alert.missing-child",
        action="A child is missing. If you see them, call the agency contact now",
        basis="42 USC 671(a)(35)(B); 34 USC 41308",
        recipients=["law_enforcement", "shelter_network"],
        due_at=T0,
        **kw,
    )


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(ROOT / "rules" / "templates")


def render(
    templates: Templates,
    recipient_class: str,
    esc: Escalation,
    *,
    agency: AgencyView = MO,
    now: datetime = T0,
    also_told: tuple[str, ...] = (),
    photo: bool = False,
) -> Message:
    context = context_for(
        recipient_class,
        esc,
        agency=agency,
        ack_url=ACK if esc.status == "firing" else None,
        now=now,
        also_told=also_told,
        shelter_photo=photo,
    )
    return templates.render(recipient_class, context)


def whole(message: Message) -> str:
    return f"Subject: {message.subject}\n{message.body}"


# --- each audience, whole ------------------------------------------------------------------


def test_the_caseworker_reads_the_duty_its_deadline_on_the_agencys_clock_and_the_case(
    templates: Templates,
) -> None:
    message = render(templates, "caseworker", escalation(), also_told=("supervisor",))
    assert whole(message) == (
        "Subject: [high] Report the missing child to NCMEC (C-100234)\n"
        "Report the missing child to NCMEC.\n"
        "\n"
        "Also told: the supervisor.\n"
        "\n"
        "Due:            Wed 25 Nov 2026, 03:10 CST (UTC-06:00), in 1 h 50 min\n"
        "Child:          C-100234, episode E-1\n"
        "Age:            15\n"
        "Jurisdiction:   Jackson, MO\n"
        "Risk tier:      high\n"
        "Basis:          42 USC 671(a)(35)(B)\n"
        "Evidence:       age: 15; risk tier: high; setting: group_home; result:\n"
        "                clear_concern\n"
        "\n"
        "Name:           Jane Q Doe (also known as JJ)\n"
        "Last seen:      Tue 24 Nov 2026, 23:00 CST (UTC-06:00) at bus station\n"
        "Clothing:       red hoodie\n"
        "Endangerment:   medical need, suspected trafficking\n"
        "Photo:          https://photos.example.org/p/C-100234.jpg\n"
        "\n"
        "Agency:         Jackson County Children's Division, 24/7: +1-816-555-0100\n"
        "Times in:       America/Chicago\n"
        "Reference:      eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee (rule federal.report-ncmec)\n"
        f"Acknowledge:    {ACK}\n"
    )


def test_the_police_notice_identifies_the_child_and_says_where_and_whom_to_call(
    templates: Templates,
) -> None:
    message = render(templates, "law_enforcement", police_alert())
    assert whole(message) == (
        "Subject: [high] A child is missing. If you see them, call the agency contact now"
        " (Jane Q Doe, 15, Jackson, MO)\n"
        "A child is missing. If you see them, call the agency contact now.\n"
        "\n"
        "If you see the child or have information, call Jackson County Children's\n"
        "Division on their 24/7 line: +1-816-555-0100.\n"
        "\n"
        "Name:               Jane Q Doe (also known as JJ)\n"
        "Age:                15\n"
        "Date of birth:      2011-05-01\n"
        "Sex:                female\n"
        "Description:        5 ft 4, slim\n"
        "Clothing:           red hoodie\n"
        "Photo:              https://photos.example.org/p/C-100234.jpg\n"
        "Last seen:          Tue 24 Nov 2026, 23:00 CST (UTC-06:00) at bus station\n"
        "Places frequented:  mall\n"
        "Endangerment:       medical need, suspected trafficking\n"
        "State:              MO\n"
        "County:             Jackson\n"
        "\n"
        "Agency:             Jackson County Children's Division\n"
        "Agency 24/7 line:   +1-816-555-0100\n"
        "Child:              C-100234\n"
        "Reference:          eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\n"
        f"Acknowledge:        {ACK}\n"
    )
    # NCMEC reads the same notice.
    assert render(templates, "ncmec", police_alert()).body == message.body


def test_the_shelter_notice_gives_the_age_band_from_the_date_of_birth(
    templates: Templates,
) -> None:
    # The engine gave no age (no date of birth when the duty began); the subject has one now.
    message = render(templates, "shelter_network", police_alert(evidence={}))
    assert whole(message) == (
        "Subject: A youth is missing (ref eeeeeeeeeeee)\n"
        "A youth is missing.\n"
        "\n"
        "If a youth matching this notice comes to you, please call +1-816-555-0100.\n"
        "\n"
        "First name or alias:  Jane\n"
        "Age:                  15-17\n"
        "Reference:            eeeeeeeeeeee\n"
    )


def test_an_overdue_duty_says_what_was_due_when_how_late_and_who_else_was_told(
    templates: Templates,
) -> None:
    later = DUE + timedelta(hours=2)
    told = ("caseworker", "supervisor", "director")
    message = render(templates, "supervisor", overdue(), now=later, also_told=told)
    assert whole(message) == (
        "Subject: [critical] Duty overdue: Report the missing child to NCMEC (C-100234)\n"
        "Duty overdue: Report the missing child to NCMEC.\n"
        "\n"
        "It was due Wed 25 Nov 2026, 03:10 CST (UTC-06:00) and is overdue by 2 h.\n"
        "Also told: the caseworker, the supervisor and the director.\n"
        "\n"
        "Child:        C-100234, episode E-1\n"
        "Risk tier:    high\n"
        "Basis:        42 USC 671(a)(35)(B)\n"
        "Agency:       Jackson County Children's Division, 24/7: +1-816-555-0100\n"
        "Reference:    ffffffffffffffffffffffffffffffff\n"
        f"Acknowledge:  {ACK}\n"
    )
    caseworker = render(templates, "caseworker", overdue(), now=later, also_told=told[1:])
    assert caseworker.body.startswith(
        "Duty overdue: Report the missing child to NCMEC.\n"
        "\n"
        "It was due Wed 25 Nov 2026, 03:10 CST (UTC-06:00) and is overdue by 2 h.\n"
        "Also told: the supervisor and the director.\n"
    )
    provider = render(templates, "placement_provider", overdue(), now=later)
    assert "It was due Wed 25 Nov 2026, 03:10 CST (UTC-06:00) and is overdue by 2 h." in (
        provider.body
    )


def test_the_parties_notice(templates: Templates) -> None:
    message = render(
        templates,
        "court",
        escalation(action="Notify the court that the child is missing", rule_id="tx.notify-court"),
    )
    assert whole(message) == (
        "Subject: Notice: Notify the court that the child is missing (C-100234)\n"
        "Notify the court that the child is missing.\n"
        "\n"
        "Child:       C-100234\n"
        "Last seen:   Tue 24 Nov 2026, 23:00 CST (UTC-06:00)\n"
        "Agency:      Jackson County Children's Division, 24/7: +1-816-555-0100\n"
        "Reference:   eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\n"
    )


def test_a_resolved_duty_says_when_it_was_done_and_counts_no_time(
    templates: Templates,
) -> None:
    done = escalation(
        status="resolved",
        evidence={"age": 15, "discharged_at": "2026-11-25T08:45:00+00:00", "on_time": True},
    )
    message = render(templates, "supervisor", done, now=DUE + timedelta(hours=5))
    assert message.subject == "RESOLVED: [high] Report the missing child to NCMEC (C-100234)"
    assert message.body.startswith("Resolved: Report the missing child to NCMEC.\n\n")
    assert "Due:          Wed 25 Nov 2026, 03:10 CST (UTC-06:00)\n" in message.body
    assert "Done:         Wed 25 Nov 2026, 02:45 CST (UTC-06:00)\n" in message.body
    assert "overdue" not in message.body and "Acknowledge" not in message.body
    assert message.data["due_in"] is None
    shelter = render(templates, "shelter_network", done)
    assert shelter.subject == "Cancelled: youth no longer missing (ref eeeeeeeeeeee)"


# --- times ----------------------------------------------------------------------------------


def test_times_are_on_the_agencys_clock_not_the_jurisdictions(templates: Templates) -> None:
    """An El Paso agency (Mountain time) with a Missouri child: the deadline the Missouri rule
    set (Central) is shown in Mountain time, with the offset that keeps it one instant."""
    message = render(templates, "caseworker", escalation(), agency=ELPASO)
    assert "Due:            Wed 25 Nov 2026, 02:10 MST (UTC-07:00), in 1 h 50 min\n" in (
        message.body
    )
    assert "Last seen:      Tue 24 Nov 2026, 22:00 MST (UTC-07:00) at bus station\n" in (
        message.body
    )
    assert "CST" not in message.body and "Times in:       America/Denver\n" in message.body
    police = render(templates, "law_enforcement", police_alert(), agency=ELPASO)
    assert "Last seen:          Tue 24 Nov 2026, 22:00 MST (UTC-07:00)" in police.body
    assert "State:              MO\nCounty:             Jackson\n" in police.body


def test_the_deadline_across_the_end_of_daylight_saving(templates: Templates) -> None:
    # Sun 1 Nov 2026 at 00:00 CDT; due at 03:10 CST, 4 h 10 min later (the 01:xx hour twice).
    now = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    esc = escalation(due_at=datetime(2026, 11, 1, 9, 10, tzinfo=UTC), created_at=now)
    message = render(templates, "supervisor", esc, now=now)
    assert "Due:          Sun 1 Nov 2026, 03:10 CST (UTC-06:00), in 4 h 10 min\n" in message.body
    spring = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 01:30 CST, half an hour before 03:00 CDT
    esc = escalation(due_at=datetime(2026, 3, 8, 8, 10, tzinfo=UTC), created_at=spring)
    message = render(templates, "supervisor", esc, now=spring)
    assert "Due:          Sun 8 Mar 2026, 03:10 CDT (UTC-05:00), in 40 min\n" in message.body


def test_a_deadline_passed_before_the_overdue_step_is_said_so(templates: Templates) -> None:
    # A reminder of the duty itself, sent after its deadline.
    message = render(templates, "caseworker", escalation(), now=DUE + timedelta(hours=2))
    assert "Due:            Wed 25 Nov 2026, 03:10 CST (UTC-06:00), overdue by 2 h\n" in (
        message.body
    )
    message = render(templates, "caseworker", escalation(), now=DUE)
    assert "(UTC-06:00), due now\n" in message.body


# --- ages -----------------------------------------------------------------------------------


def test_the_age_is_the_engines_else_from_the_date_of_birth_on_the_agencys_date(
    templates: Templates,
) -> None:
    # Born 25 Nov 2011: 15 on 25 Nov, but at 03:00 UTC it is still 24 Nov in Chicago.
    subject = {**escalation().subject.model_dump(), "date_of_birth": "2011-11-25"}  # type: ignore[union-attr]
    esc = police_alert(evidence={}, subject=subject)
    at = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert context_for("ncmec", esc, agency=MO, ack_url=None, now=at)["age"] == 14
    assert context_for("ncmec", esc, agency=unknown_agency("x1"), ack_url=None, now=at)["age"] == 15
    # The engine's age (on the jurisdiction's date when the duty began) comes first.
    aged = police_alert(evidence={"age": 16}, subject=subject)
    assert context_for("ncmec", aged, agency=MO, ack_url=None, now=at)["age"] == 16
    message = render(templates, "law_enforcement", esc, now=at)
    assert "(Jane Q Doe, 14, Jackson, MO)" in message.subject
    assert "Age:                14\n" in message.body


@pytest.mark.parametrize(
    ("evidence", "date_of_birth", "band"),
    [
        ({"age": 15}, None, "15-17"),
        ({}, "2011-05-01", "15-17"),
        ({}, "2016-05-01", "under 12"),
        ({}, "2008-01-01", "18 or older"),
        ({"age": "fifteen"}, "2013-01-01", "12-14"),  # a strange age falls back on the birth date
        ({}, "not a date", "unknown age"),
        ({}, None, "unknown age"),
        ({}, "2027-01-01", "unknown age"),  # born after the message: not an age
    ],
)
def test_the_shelters_age_band(
    templates: Templates, evidence: dict[str, Any], date_of_birth: str | None, band: str
) -> None:
    subject = {**escalation().subject.model_dump(), "date_of_birth": date_of_birth}  # type: ignore[union-attr]
    message = render(templates, "shelter_network", police_alert(evidence=evidence, subject=subject))
    assert f"Age:                  {band}\n" in message.body
    if date_of_birth not in (None, "not a date", "2027-01-01"):
        assert "unknown age" not in whole(message)


# --- plain titles ---------------------------------------------------------------------------


@pytest.mark.parametrize("recipient_class", sorted(AUDIENCE))
@pytest.mark.parametrize("status", ["firing", "resolved"])
@pytest.mark.parametrize("is_overdue", [False, True])
def test_no_rule_id_in_a_subject_or_first_line(
    templates: Templates, recipient_class: str, status: str, is_overdue: bool
) -> None:
    esc = (overdue if is_overdue else escalation)(status=status)
    message = render(templates, recipient_class, esc, now=DUE + timedelta(hours=1))
    first = message.body.split("\n", 1)[0]
    for text in (message.subject, first):
        assert "federal." not in text and "report-ncmec" not in text
        assert not re.search(r"\b[a-z]+\.[a-z-]+\b", text), text
    if recipient_class != "shelter_network":
        assert "Report the missing child to NCMEC" in message.subject
        assert "Report the missing child to NCMEC" in first
        assert ("Duty overdue" in message.subject) is is_overdue


def test_policy_check_refuses_a_template_that_names_the_rule_id(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules" / "templates", tmp_path / "templates")
    assert check_templates(tmp_path / "templates") == []
    path = tmp_path / "templates" / "provider.txt.j2"
    path.write_text(path.read_text().replace("{{ title }} ({{ child_id }})", "{{ rule_id }}", 1))
    assert check_templates(tmp_path / "templates") == [
        f"templates/provider.txt.j2: {status} for placement_provider: the subject or first line"
        " names the rule id; use the title"
        for status in ("firing", "resolved")
    ]


# --- agencies without configuration ---------------------------------------------------------


def test_an_agency_without_configuration_is_said_so_never_named(templates: Templates) -> None:
    nowhere = unknown_agency("mo-jackson")
    police = render(templates, "law_enforcement", police_alert(), agency=nowhere)
    assert (
        "The agency (mo-jackson) is not configured in carealert: no name or 24/7\n"
        "number is on file.\n"
    ) in police.body
    assert "Agency:             mo-jackson (not configured in carealert)\n" in police.body
    assert "Agency 24/7 line:   none on file\n" in police.body
    assert police.data["agency_name"] is None and police.data["agency_known"] is False
    # Times in UTC: there is no agency clock to read them on.
    assert "Last seen:          Wed 25 Nov 2026, 05:00 UTC at bus station\n" in police.body
    caseworker = render(templates, "caseworker", escalation(), agency=nowhere)
    assert (
        "Agency:         mo-jackson (not configured in carealert: no name or 24/7\n"
        "                number on file)\n"
    ) in caseworker.body
    shelter = render(templates, "shelter_network", police_alert(), agency=nowhere)
    assert "please call" not in shelter.body and "your network\ncoordinator" in shelter.body
    assert "the agency's 24/7 line" not in shelter.body


# --- who gets what --------------------------------------------------------------------------

# The keys each audience had before this change: kept (webhook receivers read them), only added.
BEFORE = {
    "common": {
        "status",
        "agency_contact",
        "escalation_id",
        "rule_id",
        "severity",
        "action",
        "agency_id",
        "child_id",
        "episode_id",
        "due_at",
        "created_at",
        "ack_url",
    },
    "shelter": {"status", "agency_contact", "first_name_or_alias", "age_band", "reference"},
}
ADDED = {
    "title",
    "duty",
    "overdue",
    "agency_known",
    "agency_name",
    "time_zone",
    "due_local",
    "due_in",
    "was_due_local",
    "overdue_by",
    "discharged_local",
    "created_local",
}


@pytest.mark.parametrize(
    ("recipient_class", "keys"),
    [
        ("shelter_network", BEFORE["shelter"] | {"agency_known"}),
        (
            "law_enforcement",
            BEFORE["common"] | ADDED | {"subject", "last_seen_local", "age", "state", "county"},
        ),
        (
            "ncmec",
            BEFORE["common"] | ADDED | {"subject", "last_seen_local", "age", "state", "county"},
        ),
        ("court", BEFORE["common"] | ADDED | {"last_seen_at", "last_seen_local"}),
        ("parent", BEFORE["common"] | ADDED | {"last_seen_at", "last_seen_local"}),
        ("placement_provider", BEFORE["common"] | ADDED),
        (
            "supervisor",
            BEFORE["common"] | ADDED | {"basis", "risk_tier", "was_due_at", "also_told"},
        ),
        ("director", BEFORE["common"] | ADDED | {"basis", "risk_tier", "was_due_at", "also_told"}),
        (
            "caseworker",
            BEFORE["common"]
            | ADDED
            | {"basis", "risk_tier", "also_told", "evidence", "evidence_words", "subject"}
            | {"last_seen_local", "age", "state", "county", "caseworker_id", "supervisor_id"},
        ),
    ],
)
def test_each_audience_gets_exactly_its_fields(recipient_class: str, keys: set[str]) -> None:
    context = context_for(
        recipient_class, escalation(), agency=MO, ack_url=ACK, now=T0, also_told=("caseworker",)
    )
    assert set(context) == keys


def test_the_shelter_never_learns_the_agency_the_duty_or_the_child(templates: Templates) -> None:
    """Naming a child-welfare agency would tell a shelter the youth is in foster care."""
    esc = escalation(
        rule_id="federal.trafficking-report",
        action="Report the identified sex-trafficking victim to law enforcement",
        recipients=["shelter_network"],
    )
    message = render(templates, "shelter_network", esc)
    text = f"{whole(message)}\n{message.data}"
    for forbidden in (
        "Children's Division",
        "Jackson",
        "trafficking",
        "foster",
        "NCMEC",
        "671",
        "Doe",
        "C-100234",
        "mo-jackson",
        "2011-05-01",
        "bus station",
        "medical",
        "CST",
    ):
        assert forbidden not in text, forbidden


def test_police_get_no_case_detail(templates: Templates) -> None:
    message = render(templates, "law_enforcement", police_alert())
    text = f"{whole(message)}\n{message.data}"
    for forbidden in ("clear_concern", "group_home", "risk_tier", "671(a)", "S-1"):
        assert forbidden not in text, forbidden
    assert not {"caseworker_id", "supervisor_id", "evidence", "basis"} & set(message.data)


@pytest.mark.parametrize("recipient_class", ["supervisor", "court", "placement_provider"])
def test_age_and_place_stay_with_police_and_the_caseworker(recipient_class: str) -> None:
    context = context_for(recipient_class, escalation(), agency=MO, ack_url=None, now=T0)
    assert not {"age", "state", "county", "subject", "evidence"} & set(context)


# --- layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("recipient_class", sorted(AUDIENCE))
def test_lines_are_short_and_links_whole(templates: Templates, recipient_class: str) -> None:
    long_description = "tall; " * 60 + "see https://example.org/" + "x" * 120 + " for more"
    subject = {**escalation().subject.model_dump(), "physical_description": long_description}  # type: ignore[union-attr]
    message = render(
        templates,
        recipient_class,
        escalation(subject=subject),
        also_told=("caseworker", "supervisor", "director", "ncmec", "guardian_ad_litem"),
        photo=True,
    )
    for line in message.body.split("\n"):
        assert len(line) <= WIDTH or re.search(r"https?://\S{40,}", line), line
    if AUDIENCE[recipient_class] not in ("shelter", "parties"):  # they are not asked to act
        assert f" {ACK}\n" in message.body


def test_wrap_keeps_fields_at_their_column_and_never_breaks_a_word() -> None:
    url = "https://example.org/" + "a" * 100
    text = "Label:     " + "word " * 20 + url + " end\nshort\n" + "prose " * 20
    assert wrap(text, 40).split("\n") == [
        "Label:     word word word word word word",
        "           word word word word word word",
        "           word word word word word word",
        "           word word",
        f"           {url}",
        "           end",
        "short",
        "prose prose prose prose prose prose",
        "prose prose prose prose prose prose",
        "prose prose prose prose prose prose",
        "prose prose",
    ]
    assert wrap(f"Acknowledge:  {url}", 40) == f"Acknowledge:  {url}"


def test_blocks_reads_paragraphs_and_field_lists_back() -> None:
    body = (
        "Duty overdue: Report it.\n"
        "\n"
        "It was due then and is overdue by 2 h.\n"
        "Also told: the supervisor.\n"
        "\n"
        "Due:     today\n"
        "Agency:  A, 24/7:\n"
        "         +1-555\n"
        "\n"
        "Acknowledge: https://x.example/a\n"
    )
    assert blocks(body) == [
        Paragraph("Duty overdue: Report it."),
        Paragraph("It was due then and is overdue by 2 h. Also told: the supervisor."),
        Fields((("Due", "today"), ("Agency", "A, 24/7: +1-555"))),
        Paragraph("Acknowledge: https://x.example/a"),
    ]


def test_a_duration_is_never_split_across_lines() -> None:
    from services.notify.templates import wrap

    for text, duration in (
        (
            "It was due Sat 14 Nov 2026, 17:48 MST (UTC-07:00) and is overdue by 19 d 17 h.",
            "19 d 17 h",
        ),
        (
            "It was due Sat 14 Nov 2026, 17:48 MST (UTC-07:00) and is now due in 1 h 50 min.",
            "1 h 50 min",
        ),
    ):
        lines = wrap(text).split("\n")
        assert len(lines) == 2 and any(duration in line for line in lines), lines
        assert "\u00a0" not in wrap(text)
