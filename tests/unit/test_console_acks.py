"""Acknowledgements and notes from the console, without Kafka: the console's two-minute token
for the person signed in, acknowledgements recorded `via: console`, notes that never stop
anything and are one per note_id, and refusals that name the field without echoing it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.common.secrets import secret_hash
from services.common.tokens import ApiTokens, Grant
from services.notify.ack_api import AckIn, Acknowledger, acks_router
from services.notify.acks import (
    CONSOLE_RECEIVER,
    AckSubject,
    ack_token,
    check_ack_token,
    check_console_token,
    console_ack_token,
    legacy_ack_token,
)
from services.notify.config import RoutingInvalid, load_routing
from services.notify.escalations_api import escalations_router
from services.notify.metrics import NotifyMetrics
from services.notify.records import Ack, acknowledgements
from services.notify.schedule import open_entry
from tests.support import make_escalation
from tests.unit.test_named_acks import PEOPLE, SECRET, SlowLog
from tests.unit.test_notify_pipeline import AGENCY, ROUTING, T0, write_policy

Setup = tuple[Acknowledger, SlowLog, str]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    routing = load_routing(write_policy(tmp_path, ROUTING, AGENCY))
    log = SlowLog()
    esc = make_escalation(
        created_at=T0, due_at=T0 + timedelta(hours=2), recipients=["caseworker", "law_enforcement"]
    )
    log.open[esc.escalation_id] = open_entry(esc, 0, T0, routing)
    metrics = NotifyMetrics(CollectorRegistry())
    return Acknowledger(SECRET, log, metrics, routing, PEOPLE), log, esc.escalation_id


def console(esc_id: str, person: str, **fields: Any) -> AckIn:
    """What the console posts for `person`, signed in, with a token minted now."""
    token = console_ack_token(SECRET, esc_id, person, datetime.now(UTC))
    return AckIn(receiver=CONSOLE_RECEIVER, token=token, person=person, **fields)


def note(esc_id: str, person: str, text: str, note_id: str | None = None) -> AckIn:
    return console(esc_id, person, kind="note", note_id=note_id or uuid.uuid4().hex, note=text)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def body(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.body))


def acks_counted(acknowledger: Acknowledger) -> float | None:
    return acknowledger.metrics.registry.get_sample_value("carealert_notify_acks_total")


def submit(acknowledger: Acknowledger, esc_id: str, ack: AckIn) -> Any:
    return run(acknowledger.acknowledge(esc_id, acknowledger.by_link(esc_id, ack)))


# --- the console's token ---------------------------------------------------------------------


def test_a_console_token_binds_escalation_console_and_person_for_120_seconds() -> None:
    now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    token = console_ack_token(SECRET, "esc-1", "W-1", now)
    assert token.split(".")[0] == str(int(now.timestamp()) + 120)
    assert token == ack_token(
        SECRET, AckSubject("esc-1", "console", "W-1"), int(now.timestamp()) + 120
    )
    subject = AckSubject("esc-1", CONSOLE_RECEIVER, "W-1")
    assert check_ack_token(SECRET, subject, token, now + timedelta(seconds=120)) == "ok"
    assert check_ack_token(SECRET, subject, token, now + timedelta(seconds=121)) == "expired"
    for other in (
        AckSubject("esc-2", CONSOLE_RECEIVER, "W-1"),
        AckSubject("esc-1", CONSOLE_RECEIVER, "S-1"),
        AckSubject("esc-1", "caseworker", "W-1"),
        AckSubject("esc-1", CONSOLE_RECEIVER, None),
    ):
        assert check_ack_token(SECRET, other, token, now) == "invalid"
    assert check_ack_token("another-secret", subject, token, now) == "invalid"


def test_a_console_token_is_minted_from_an_aware_time_only() -> None:
    with pytest.raises(ValueError, match="aware"):
        console_ack_token(SECRET, "esc-1", "W-1", datetime(2026, 11, 24, 2, 0))


def test_a_console_token_good_for_longer_than_the_console_mints_is_refused() -> None:
    """The console shares the secret; a token of its that would outlive the page it was put in
    (a bug) is refused, while clocks a little apart are tolerated."""
    now = datetime.now(UTC)
    subject = AckSubject("esc-1", CONSOLE_RECEIVER, "W-1")
    ahead = console_ack_token(SECRET, "esc-1", "W-1", now + timedelta(seconds=25))
    assert check_console_token(SECRET, "esc-1", "W-1", ahead, now) == "ok"
    long_lived = ack_token(SECRET, subject, int((now + timedelta(days=7)).timestamp()))
    assert check_ack_token(SECRET, subject, long_lived, now) == "ok"
    assert check_console_token(SECRET, "esc-1", "W-1", long_lived, now) == "invalid"


# --- acknowledging in the console ------------------------------------------------------------


def test_a_caseworker_acknowledging_in_the_console_stops_the_chain_via_console(
    setup: Setup,
) -> None:
    acknowledger, log, esc_id = setup
    answer = submit(acknowledger, esc_id, console(esc_id, "W-1", note="called the family"))
    assert answer.status_code == 202
    assert body(answer) == {
        "escalation_id": esc_id,
        "status": "acknowledged",
        "acknowledged_by": ["W-1"],
        "acknowledged_at": log.acks[esc_id][0].acked_at.isoformat(),
        "stops_reminders": True,
    }
    [ack] = log.acks[esc_id]
    assert (ack.receiver, ack.person_id, ack.agency_id, ack.via, ack.stops, ack.note) == (
        "console",
        "W-1",
        "demo-agency",
        "console",
        True,
        "called the family",
    )
    assert ack.kind is None and ack.note_id is None
    assert log.open[esc_id].acked_by == "W-1"
    again = submit(acknowledger, esc_id, console(esc_id, "W-1"))
    assert again.status_code == 200 and body(again)["acknowledged_by"] == ["W-1"]
    assert len(log.acks[esc_id]) == 1


def test_a_console_token_names_its_person_and_only_that_person(setup: Setup) -> None:
    acknowledger, log, esc_id = setup
    cases = {
        "no person": console(esc_id, "W-1").model_copy(update={"person": None}),
        "another person": console(esc_id, "W-1").model_copy(update={"person": "S-1"}),
        "another escalation": console("esc-other", "W-1"),
        "a link's token": AckIn(
            receiver=CONSOLE_RECEIVER,
            person="W-1",
            token=ack_token(SECRET, AckSubject(esc_id, "caseworker", "W-1"), 2_000_000_000),
        ),
        "a link of the release before, for a receiver called console": AckIn(
            receiver=CONSOLE_RECEIVER,
            token=legacy_ack_token(SECRET, esc_id, CONSOLE_RECEIVER, 2_000_000_000),
        ),
    }
    for why, ack in cases.items():
        with pytest.raises(HTTPException) as info:
            acknowledger.by_link(esc_id, ack)
        assert info.value.status_code == 403, why
    assert esc_id not in log.acks


def test_an_expired_console_form_says_reload(setup: Setup) -> None:
    acknowledger, _, esc_id = setup
    then = datetime.now(UTC) - timedelta(seconds=121)
    token = console_ack_token(SECRET, esc_id, "W-1", then)
    with pytest.raises(HTTPException) as info:
        acknowledger.by_link(esc_id, AckIn(receiver="console", token=token, person="W-1"))
    assert info.value.status_code == 403 and "reload" in str(info.value.detail)


@pytest.mark.parametrize(("person", "why"), [("G-1", "disabled"), ("W-9", "another agency's")])
def test_the_console_acts_only_for_the_escalations_agencys_enabled_people(
    setup: Setup, person: str, why: str
) -> None:
    acknowledger, log, esc_id = setup
    for ack in (console(esc_id, person), note(esc_id, person, "x")):
        with pytest.raises(HTTPException) as info:
            submit(acknowledger, esc_id, ack)
        assert info.value.status_code == 403, why
    assert esc_id not in log.acks


# --- notes -----------------------------------------------------------------------------------


def test_a_notes_key_is_its_note_id_and_an_acknowledgements_its_person() -> None:
    at = T0
    ack = Ack(escalation_id="e", receiver="console", acked_at=at, person_id="W-1")
    first = Ack(
        escalation_id="e",
        receiver="console",
        acked_at=at,
        person_id="W-1",
        kind="note",
        note_id="a" * 32,
        note="x",
    )
    second = first.model_copy(update={"note_id": "b" * 32})
    assert ack.key == ("person", "W-1")
    assert first.key == ("note", "a" * 32) and second.key == ("note", "b" * 32)
    assert first.is_note and not ack.is_note
    assert acknowledgements([first, ack, second]) == [ack]


@pytest.mark.parametrize(
    "record",
    [
        {"stops": True},
        {"stops": True, "via": "console"},
        {},
    ],
)
def test_a_note_never_stops_the_chain_whatever_its_record_says(record: dict[str, Any]) -> None:
    value = {
        "escalation_id": "e",
        "receiver": "console",
        "acked_at": "2026-11-24T02:00:00+00:00",
        "person_id": "S-1",
        "kind": "note",
        "note_id": "c" * 32,
        "note": "x",
        **record,
    }
    assert Ack.model_validate_json(json.dumps(value)).stops is False
    assert Ack.model_validate(value).stops is False
    assert Ack.model_validate({**value, "kind": None}).stops is record.get("stops", True)


@pytest.mark.parametrize("missing", ["note_id", "person_id"])
def test_a_note_record_without_its_id_or_person_is_unreadable(missing: str) -> None:
    value = {
        "escalation_id": "e",
        "receiver": "console",
        "acked_at": "2026-11-24T02:00:00+00:00",
        "person_id": "S-1",
        "kind": "note",
        "note_id": "c" * 32,
    }
    del value[missing]
    with pytest.raises(ValueError, match="a note names its note_id and person_id"):
        Ack.model_validate(value)


def test_a_note_by_a_supervisor_stops_nothing_and_is_no_acknowledgement(setup: Setup) -> None:
    acknowledger, log, esc_id = setup
    note_id = uuid.uuid4().hex
    answer = submit(acknowledger, esc_id, note(esc_id, "S-1", "left a voicemail", note_id))
    assert answer.status_code == 202
    [recorded] = log.acks[esc_id]
    assert body(answer) == {
        "escalation_id": esc_id,
        "status": "noted",
        "note_id": note_id,
        "noted_by": "S-1",
        "noted_at": recorded.acked_at.isoformat(),
        "stops_reminders": False,
    }
    assert (recorded.kind, recorded.note_id, recorded.via, recorded.stops) == (
        "note",
        note_id,
        "console",
        False,
    )
    assert recorded.note == "left a voicemail" and recorded.agency_id == "demo-agency"
    assert log.open[esc_id].acked_by is None
    assert acks_counted(acknowledger) == 0  # a note is not an acknowledgement


def test_the_same_form_twice_is_one_note_and_a_new_form_another(setup: Setup) -> None:
    acknowledger, log, esc_id = setup
    note_id = uuid.uuid4().hex

    async def double_submit() -> list[Any]:
        ack = note(esc_id, "W-1", "first", note_id)
        who = acknowledger.by_link(esc_id, ack)
        return list(
            await asyncio.gather(
                acknowledger.acknowledge(esc_id, who), acknowledger.acknowledge(esc_id, who)
            )
        )

    answers = run(double_submit())
    assert sorted(a.status_code for a in answers) == [200, 202]
    assert {body(a)["noted_at"] for a in answers} == {log.acks[esc_id][0].acked_at.isoformat()}
    # The same id later, with other words (a retry after an edit): the first stands.
    late = submit(acknowledger, esc_id, note(esc_id, "W-1", "changed", note_id))
    assert late.status_code == 200 and body(late)["note_id"] == note_id
    other = submit(acknowledger, esc_id, note(esc_id, "W-1", "second"))
    assert other.status_code == 202
    assert [a.note for a in log.acks[esc_id]] == ["first", "second"]


def test_a_persons_notes_neither_count_as_nor_block_their_acknowledgement(setup: Setup) -> None:
    """W-1 adds a note, then acknowledges: the acknowledgement is theirs and stops the chain;
    the notes are never among who acknowledged."""
    acknowledger, log, esc_id = setup
    submit(acknowledger, esc_id, note(esc_id, "W-1", "looking into it"))
    submit(acknowledger, esc_id, note(esc_id, "S-1", "me too"))
    assert log.open[esc_id].acked_by is None
    answer = submit(acknowledger, esc_id, console(esc_id, "W-1"))
    assert answer.status_code == 202
    assert body(answer)["acknowledged_by"] == ["W-1"]
    assert log.open[esc_id].acked_by == "W-1"
    submit(acknowledger, esc_id, note(esc_id, "W-1", "family reached"))
    assert log.open[esc_id].acked_by == "W-1"
    assert [a.who for a in acknowledgements(log.acks[esc_id])] == ["W-1"]
    assert acks_counted(acknowledger) == 1


def operators_api(log: SlowLog) -> tuple[TestClient, dict[str, str]]:
    """The operators' read API over `log`, and the headers of an operator of demo-agency."""
    operator = Grant(
        agency_id="demo-agency", role="operator", label="t", person_id="S-1", receiver=None
    )
    app = FastAPI()
    app.include_router(
        escalations_router(ApiTokens({secret_hash("operator-token"): operator}), PEOPLE, log)
    )
    return TestClient(app), {"Authorization": "Bearer operator-token"}


def test_the_operators_api_lists_notes_apart_from_acknowledgements(setup: Setup) -> None:
    acknowledger, log, esc_id = setup
    note_id = uuid.uuid4().hex
    submit(acknowledger, esc_id, note(esc_id, "S-1", "voicemail left", note_id))
    submit(acknowledger, esc_id, console(esc_id, "W-1"))
    client, auth = operators_api(log)
    listed = client.get("/v1/escalations", headers=auth).json()["escalations"]
    assert [(e["status"], e["acknowledged_by"]) for e in listed] == [("acknowledged", ["W-1"])]
    one = client.get(f"/v1/escalations/{esc_id}", headers=auth).json()
    assert one["acknowledged_by"] == ["W-1"]
    assert [(a["by"], a["via"], a["stops_reminders"]) for a in one["acks"]] == [
        ("W-1", "console", True)
    ]
    [n] = one["notes"]
    assert n == {
        "note_id": note_id,
        "by": "S-1",
        "at": log.acks[esc_id][0].acked_at.isoformat(),
        "note": "voicemail left",
    }
    unacked = client.get("/v1/escalations?status=unacknowledged", headers=auth).json()
    assert unacked["count"] == 0


def test_only_notes_leaves_an_escalation_unacknowledged_in_the_operators_api(
    setup: Setup,
) -> None:
    acknowledger, log, esc_id = setup
    submit(acknowledger, esc_id, note(esc_id, "S-1", "voicemail left"))
    client, auth = operators_api(log)
    one = client.get(f"/v1/escalations/{esc_id}", headers=auth)
    assert one.json()["status"] == "unacknowledged"
    assert one.json()["acknowledged_by"] == [] and one.json()["acks"] == []
    assert len(one.json()["notes"]) == 1


# --- what the endpoint refuses ---------------------------------------------------------------


SECRET_LOOKING = "Zz9-never-echo-" + "q" * 10


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kind": "note", "note": "x"}, "note_id: required for a note"),
        ({"kind": "note", "note_id": SECRET_LOOKING, "note": "x"}, "note_id: 32 lowercase"),
        ({"kind": "note", "note_id": "A" * 32, "note": "x"}, "note_id: 32 lowercase"),
        ({"kind": "note", "note_id": "a" * 31, "note": "x"}, "note_id: 32 lowercase"),
        ({"kind": SECRET_LOOKING, "note": "x"}, 'kind: absent for an acknowledgement, or "note"'),
        ({"kind": "note", "note_id": "a" * 32}, "note: required for a note"),
        ({"kind": "note", "note_id": "a" * 32, "note": "   "}, "note: required for a note"),
        ({"kind": "note", "note_id": "a" * 32, "note": SECRET_LOOKING + "\n"}, "note: at most"),
        ({"kind": "note", "note_id": "a" * 32, "note": "x", "person": None}, "person: required"),
        ({"note_id": "a" * 32}, "note_id: only a note (kind note) has one"),
        ({SECRET_LOOKING: "x"}, "body: unknown field"),
        ({"person": SECRET_LOOKING * 10}, "person: a person's id"),
    ],
)
def test_a_malformed_console_request_is_a_422_naming_the_field_never_the_value(
    setup: Setup, fields: dict[str, Any], named: str
) -> None:
    acknowledger, log, esc_id = setup
    app = FastAPI()
    app.include_router(acks_router(acknowledger, ApiTokens.empty()))
    client = TestClient(app)
    token = console_ack_token(SECRET, esc_id, "W-1", datetime.now(UTC))
    payload = {"receiver": "console", "token": token, "person": "W-1", **fields}
    answer = client.post(f"/v1/escalations/{esc_id}/ack", json=payload)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]
    assert SECRET_LOOKING not in answer.text and token not in answer.text
    assert esc_id not in log.acks


def test_a_note_is_added_in_the_console_only(setup: Setup) -> None:
    """A mailed link acknowledges (with an optional note); it adds no notes."""
    acknowledger, log, esc_id = setup
    expires = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    token = ack_token(SECRET, AckSubject(esc_id, "caseworker", "W-1"), expires)
    app = FastAPI()
    app.include_router(acks_router(acknowledger, ApiTokens.empty()))
    answer = TestClient(app).post(
        f"/v1/escalations/{esc_id}/ack",
        json={
            "receiver": "caseworker",
            "token": token,
            "person": "W-1",
            "kind": "note",
            "note_id": "a" * 32,
            "note": "x",
        },
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == "kind: notes are added in the console (receiver console)"
    assert esc_id not in log.acks


def test_the_console_posts_json_and_gets_json(setup: Setup) -> None:
    """The shapes the console uses, over HTTP: 202 then 200 for an acknowledgement, 202 then
    200 for a note; a JSON body without receiver or token is a 422 naming them."""
    acknowledger, log, esc_id = setup
    app = FastAPI()
    app.include_router(acks_router(acknowledger, ApiTokens.empty()))
    client = TestClient(app)
    url = f"/v1/escalations/{esc_id}/ack"

    def token() -> str:
        return console_ack_token(SECRET, esc_id, "W-1", datetime.now(UTC))

    note_id = uuid.uuid4().hex
    noted = {"kind": "note", "note_id": note_id, "note": "called the school"}
    for expected in (202, 200):
        answer = client.post(
            url, json={"receiver": "console", "token": token(), "person": "W-1", **noted}
        )
        assert answer.status_code == expected
        assert answer.json()["status"] == "noted" and answer.json()["note_id"] == note_id
    for expected in (202, 200):
        answer = client.post(url, json={"receiver": "console", "token": token(), "person": "W-1"})
        assert answer.status_code == expected
        assert answer.json()["acknowledged_by"] == ["W-1"]
    assert [(a.kind, a.via) for a in log.acks[esc_id]] == [("note", "console"), (None, "console")]
    missing = client.post(url, json={"person": "W-1"})
    assert missing.status_code == 422
    assert missing.json()["detail"] == "receiver: required; token: required"
    not_json = client.post(url, content=b"[1, 2", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    assert not_json.json()["detail"] == "body: a JSON object with receiver and token"


# --- the name "console" ----------------------------------------------------------------------


def test_no_receiver_may_be_called_console(tmp_path: Path) -> None:
    agency = AGENCY + "  - name: console\n    email: {to: desk@agency.example}\n"
    routing = ROUTING.replace(
        "receivers:\n",
        "receivers:\n  - name: console\n    shared: true\n    webhook: {url: https://c.example}\n",
    )
    with pytest.raises(RoutingInvalid) as info:
        load_routing(write_policy(tmp_path, routing, agency))
    reserved = (
        "'console' is reserved: acknowledgements made in the console are recorded with that"
        " receiver; give this receiver another name"
    )
    assert [str(p) for p in info.value.problems if "reserved" in str(p)] == [
        f"routing.yaml: receivers.0.name: {reserved}",
        f"agencies/demo-agency.yaml: receivers.3.name: {reserved}",
    ]
