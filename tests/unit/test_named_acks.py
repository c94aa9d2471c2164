"""Named acknowledgements without Kafka: who may stop an escalation's chain, one per person,
receipts that stop nothing, and API tokens that only reach their own agency's escalations."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from prometheus_client import CollectorRegistry

from services.common.people import People, Person
from services.common.tokens import Grant
from services.notify.ack_api import AckIn, Acknowledger
from services.notify.acks import AckSubject, ack_token, legacy_ack_token
from services.notify.config import load_routing
from services.notify.metrics import NotifyMetrics
from services.notify.records import Ack, NotificationRecord
from services.notify.schedule import open_entry
from services.notify.store import MemoryNotificationLog
from tests.support import make_escalation
from tests.unit.test_notify_pipeline import AGENCY, ROUTING, T0, write_policy

SECRET = "unit-ack-secret"


class SlowLog(MemoryNotificationLog):
    async def record_ack(self, ack: Ack) -> None:
        await asyncio.sleep(0.05)  # Kafka taking its time
        await super().record_ack(ack)


PEOPLE = People(
    [
        Person(id="W-1", agency_id="demo-agency", name="A", roles=("caseworker",)),
        Person(id="S-1", agency_id="demo-agency", name="B", roles=("supervisor",)),
        Person(id="X-1", agency_id="demo-agency", name="C", roles=("auditor",)),
        Person(id="G-1", agency_id="demo-agency", name="D", roles=("caseworker",), disabled=True),
        Person(id="W-9", agency_id="other-agency", name="E", roles=("caseworker",)),
    ]
)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Acknowledger, SlowLog, str]:
    routing = load_routing(write_policy(tmp_path, ROUTING, AGENCY))
    log = SlowLog()
    esc = make_escalation(
        created_at=T0, due_at=T0 + timedelta(hours=2), recipients=["caseworker", "law_enforcement"]
    )
    log.open[esc.escalation_id] = open_entry(esc, 0, T0, routing)
    metrics = NotifyMetrics(CollectorRegistry())
    return Acknowledger(SECRET, log, metrics, routing, PEOPLE), log, esc.escalation_id


def link(esc_id: str, receiver: str, person: str | None) -> AckIn:
    expires = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    token = ack_token(SECRET, AckSubject(esc_id, receiver, person), expires)
    return AckIn(receiver=receiver, token=token, person=person)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def body(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.body))


def test_one_person_clicking_twice_at_once_gets_one_202_and_their_first_stands(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, log, esc_id = setup

    async def twice() -> list[Any]:
        who = acknowledger.by_link(esc_id, link(esc_id, "caseworker", "W-1"))
        return list(
            await asyncio.gather(
                acknowledger.acknowledge(esc_id, who), acknowledger.acknowledge(esc_id, who)
            )
        )

    answers = run(twice())
    assert sorted(a.status_code for a in answers) == [200, 202]
    assert all(body(a)["acknowledged_by"] == ["W-1"] for a in answers)
    assert [a.who for a in log.acks[esc_id]] == ["W-1"]
    assert log.open[esc_id].acked_by == "W-1"


def test_a_later_ack_by_someone_else_is_added_never_overwriting(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, log, esc_id = setup
    for receiver, person in (("caseworker", "W-1"), ("supervisor", "S-1")):
        answer = run(
            acknowledger.acknowledge(
                esc_id, acknowledger.by_link(esc_id, link(esc_id, receiver, person))
            )
        )
        assert answer.status_code == 202
    assert body(answer)["acknowledged_by"] == ["W-1", "S-1"]
    assert log.open[esc_id].acked_by == "W-1"  # the first one stopped the chain
    first = log.acks[esc_id][0]
    # Read back from another notify instance: a later copy never replaces the first.
    run(log.record_ack(first.model_copy(update={"acked_at": first.acked_at + timedelta(1)})))
    assert log.acks[esc_id][0] == first and len(log.acks[esc_id]) == 2


def test_a_receipt_from_a_shared_receiver_is_recorded_and_stops_nothing(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, log, esc_id = setup
    answer = run(
        acknowledger.acknowledge(
            esc_id, acknowledger.by_link(esc_id, link(esc_id, "law-enforcement", None))
        )
    )
    assert answer.status_code == 202 and body(answer)["stops_reminders"] is False
    assert log.open[esc_id].acked_by is None
    assert [a.who for a in log.acks[esc_id]] == ["receiver:law-enforcement"]


def test_a_role_the_agency_does_not_name_records_a_receipt_only(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, log, esc_id = setup
    who = acknowledger.by_link(esc_id, link(esc_id, "caseworker", "X-1"))  # an auditor
    assert body(run(acknowledger.acknowledge(esc_id, who)))["stops_reminders"] is False
    assert log.open[esc_id].acked_by is None


@pytest.mark.parametrize(
    ("person", "why"),
    [
        ("G-1", "disabled"),
        ("W-9", "another agency's person: not found in this agency"),
        ("nobody", "unknown"),
    ],
)
def test_only_the_owning_agencys_enabled_people_act(
    setup: tuple[Acknowledger, SlowLog, str], person: str, why: str
) -> None:
    acknowledger, log, esc_id = setup
    who = acknowledger.by_link(esc_id, link(esc_id, "caseworker", person))
    with pytest.raises(HTTPException) as info:
        run(acknowledger.acknowledge(esc_id, who))
    assert info.value.status_code == 403, why
    assert esc_id not in log.acks


def test_a_link_for_one_person_does_not_ack_as_another(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, _, esc_id = setup
    forged = link(esc_id, "caseworker", "W-1").model_copy(update={"person": "S-1"})
    with pytest.raises(HTTPException) as info:
        acknowledger.by_link(esc_id, forged)
    assert info.value.status_code == 403


def grant(agency: str, role: str, person: str | None = None, receiver: str | None = None) -> Grant:
    return Grant(agency_id=agency, role=role, label="t", person_id=person, receiver=receiver)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (grant("other-agency", "operator", "W-9"), 404),  # never 403: no confirmation
        (grant("demo-agency", "auditor", "X-1"), 403),
        (grant("demo-agency", "operator"), 403),  # names no person
        (grant("*", "receiver", receiver="ncmec"), 404),  # not a receiver of this escalation
        (grant("other-agency", "receiver", receiver="caseworker"), 404),
    ],
)
def test_api_tokens_reach_only_their_own_agencys_escalations(
    setup: tuple[Acknowledger, SlowLog, str], token: Grant, status: int
) -> None:
    acknowledger, _, esc_id = setup
    with pytest.raises(HTTPException) as info:
        acknowledger.by_grant(esc_id, token, None)
    assert info.value.status_code == status


def test_an_operator_token_acks_as_its_person_and_a_machine_receiver_as_a_receipt(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, log, esc_id = setup
    le = acknowledger.by_grant(esc_id, grant("*", "receiver", receiver="law-enforcement"), None)
    run(acknowledger.acknowledge(esc_id, le))
    assert log.open[esc_id].acked_by is None
    op = acknowledger.by_grant(esc_id, grant("demo-agency", "operator", "S-1"), "on it")
    answer = run(acknowledger.acknowledge(esc_id, op))
    assert answer.status_code == 202
    assert [(a.who, a.via, a.stops, a.note) for a in log.acks[esc_id]] == [
        ("receiver:law-enforcement", "api", False, None),
        ("S-1", "api", True, "on it"),
    ]
    assert log.open[esc_id].acked_by == "S-1"


def test_a_link_the_release_before_sent_stops_the_chain_only_for_the_agencys_own_receiver(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    """Links mailed before the upgrade name nobody; they meant "this receiver acknowledges"
    and still do for the agency's own receivers, never for a shared one (law enforcement)."""
    acknowledger, log, esc_id = setup
    expires = int((datetime.now(UTC) + timedelta(days=1)).timestamp())

    def old(receiver: str) -> AckIn:
        token = legacy_ack_token(SECRET, esc_id, receiver, expires)
        return AckIn(receiver=receiver, token=token)

    le = run(acknowledger.acknowledge(esc_id, acknowledger.by_link(esc_id, old("law-enforcement"))))
    assert body(le)["stops_reminders"] is False and log.open[esc_id].acked_by is None
    cw = run(acknowledger.acknowledge(esc_id, acknowledger.by_link(esc_id, old("caseworker"))))
    assert body(cw)["stops_reminders"] is True
    assert log.open[esc_id].acked_by == "receiver:caseworker"


def test_a_receipt_shows_only_its_own_acknowledgement(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    acknowledger, _, esc_id = setup
    run(
        acknowledger.acknowledge(
            esc_id, acknowledger.by_link(esc_id, link(esc_id, "caseworker", "W-1"))
        )
    )
    le = acknowledger.by_grant(esc_id, grant("*", "receiver", receiver="law-enforcement"), None)
    assert body(run(acknowledger.acknowledge(esc_id, le)))["acknowledged_by"] == [
        "receiver:law-enforcement"
    ]


def test_a_receiver_token_reaches_only_what_was_sent_to_it(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    """The supervisor is a later escalation level of this escalation: until that level is
    sent, its receiver token learns nothing of it."""
    acknowledger, log, esc_id = setup
    supervisor = grant("demo-agency", "receiver", receiver="supervisor")
    with pytest.raises(HTTPException) as info:
        acknowledger.by_grant(esc_id, supervisor, None)
    assert info.value.status_code == 404
    sent = NotificationRecord(
        notification_id="n",
        escalation_id=esc_id,
        receiver="supervisor",
        recipient_class="supervisor",
        channel="email",
        status="delivered",
        attempt=1,
        step="e1",
        escalation_status="firing",
        at=T0,
    )
    run(log.record_sent("n", sent))
    assert acknowledger.by_grant(esc_id, supervisor, None).receiver == "supervisor"


def test_a_token_whose_person_was_disabled_or_removed_is_refused() -> None:
    from services.notify.auth import bearer_grant

    class Tokens:
        def __init__(self, person: str) -> None:
            self.person = person

        def lookup(self, presented: str | None) -> Grant | None:
            return grant("demo-agency", "operator", self.person) if presented else None

    assert bearer_grant(Tokens("W-1"), PEOPLE, "Bearer t").person_id == "W-1"  # type: ignore[arg-type]
    for person in ("G-1", "W-9", "gone"):  # disabled; another agency's; not in the registry
        with pytest.raises(HTTPException) as info:
            bearer_grant(Tokens(person), PEOPLE, "Bearer t")  # type: ignore[arg-type]
        assert info.value.status_code == 401


def test_a_person_in_a_browser_gets_pages_not_json(
    setup: tuple[Acknowledger, SlowLog, str],
) -> None:
    """The link opens a page that says what acknowledging does; the button's answer is a page
    too; a bad link says why and what to do instead. No child data on any of them."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from services.common.tokens import ApiTokens
    from services.notify.ack_api import acks_router

    acknowledger, log, esc_id = setup
    app = FastAPI()
    app.include_router(acks_router(acknowledger, ApiTokens.empty()))
    client = TestClient(app)
    ack = link(esc_id, "caseworker", "W-1")
    url = f"/v1/escalations/{esc_id}/ack"
    params = {"receiver": ack.receiver, "person": "W-1", "token": ack.token}
    form = client.get(url, params=params)
    assert form.status_code == 200 and "<form method=post>" in form.text
    assert "the reminders stop" in form.text
    browser = {"Accept": "text/html,application/xhtml+xml"}
    first = client.post(url, params=params, data={"note": "on it"}, headers=browser)
    assert first.status_code == 202 and "Thank you" in first.text
    assert "Reminders and escalation for it have stopped." in first.text
    again = client.post(url, params=params, data={}, headers=browser)
    assert again.status_code == 200 and "You acknowledged this" in again.text
    assert log.acks[esc_id][0].note == "on it"
    bad = client.get(url, params={**params, "person": "S-1"})
    assert bad.status_code == 403 and "Not acknowledged" in bad.text
    for page in (form, first, again, bad):
        assert "Jane" not in page.text and "C-" not in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
    # A link whose escalation is no longer open, or whose person was disabled, says so before
    # any button.
    disabled = link(esc_id, "caseworker", "G-1")
    gone = client.get(
        url, params={"receiver": "caseworker", "person": "G-1", "token": disabled.token}
    )
    assert gone.status_code == 403 and "<form" not in gone.text
    del log.open[esc_id]
    closed = client.get(url, params=params)
    assert closed.status_code == 404 and "resolved already" in closed.text


def test_a_note_is_one_line_of_printable_text(setup: tuple[Acknowledger, SlowLog, str]) -> None:
    """Notes are shown to the agency: no control, bidi or line-break characters get in, by
    link (form) or by API (JSON); the answer names the field, never the text."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from services.common.tokens import ApiTokens
    from services.notify.ack_api import acks_router

    acknowledger, log, esc_id = setup
    app = FastAPI()
    app.include_router(acks_router(acknowledger, ApiTokens.empty()))
    client = TestClient(app)
    ack = link(esc_id, "caseworker", "W-1")
    url = f"/v1/escalations/{esc_id}/ack"
    params = {"receiver": ack.receiver, "person": "W-1", "token": ack.token}
    for note in ("ok\x00", "\u202eevil", "a\r\nInjected: x", "x" * 501):
        answer = client.post(url, params=params, data={"note": note})
        assert answer.status_code == 422 and "note" in answer.text
        assert note not in answer.text
    assert esc_id not in log.acks


def test_notify_refuses_a_body_over_its_limit_before_any_route_reads_it() -> None:
    """The ack endpoint is public: a huge body, declared or streamed, is a 413 at once."""
    import asyncio as aio

    from services.common.bodylimit import BodyLimit

    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> int:
        sent: list[Any] = []
        queue = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive() -> Any:
            return queue.pop(0)

        async def send(message: Any) -> None:
            sent.append(message)

        await BodyLimit(app, 100)({"type": "http", "headers": headers}, receive, send)
        return int(sent[0]["status"])

    assert aio.run(call([(b"content-length", b"10")], [b"0123456789"])) == 200
    assert seen == [b"0123456789"]
    assert aio.run(call([(b"content-length", b"300000000")], [b""])) == 413
    assert aio.run(call([], [b"x" * 60, b"x" * 60])) == 413  # streamed without a length
    assert aio.run(call([(b"content-length", b"-1")], [b""])) == 413
    assert len(seen) == 1
