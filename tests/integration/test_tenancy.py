"""Agencies are tenants, on the real broker with real SMTP and HTTP: one agency's escalation
reaches only its own people and the shared receivers; an agency with no configuration reaches
only the shared receivers and pages the operators; every read and write of the operators' API
with another agency's token, or none, is refused without confirming anything exists."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics
from tests.integration.notify_support import (
    AUDITOR_TOKEN,
    CASEWORKER,
    LE_RECEIVER_TOKEN,
    NO_PERSON_TOKEN,
    OPERATOR_TOKEN,
    OTHER_CASEWORKER,
    OTHER_OPERATOR_TOKEN,
    NotifyStack,
    ack_link,
    publish,
    text_of,
)
from tests.support import make_escalation, read_topic, wait_until

OPERATORS = "operators@carealert.example"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def notifications(bootstrap: str, escalation_id: str) -> list[dict[str, Any]]:
    return [
        r.json()
        for r in read_topic(bootstrap, topics.NOTIFICATIONS)
        if r.key == escalation_id.encode()
    ]


def every_mail(stack: NotifyStack, escalation_id: str) -> list[tuple[list[str], Any]]:
    with stack.smtp.lock:
        return [
            (rcpt, m)
            for rcpt, m in stack.smtp.messages
            if m["X-Carealert-Escalation"] == escalation_id
        ]


def test_the_same_staff_id_in_two_agencies_reaches_each_agencys_own_person(
    stack: NotifyStack, producer: KafkaProducer
) -> None:
    """Both agencies have a caseworker W-1; each escalation reaches its own agency's W-1 and
    nobody else, and its ack link is bound to that person."""
    mine = make_escalation(agency_id="demo-agency", caseworker_id="W-1")
    theirs = make_escalation(agency_id="other-agency", caseworker_id="W-1")
    publish(producer, mine)
    publish(producer, theirs)
    wait_until(lambda: len(every_mail(stack, mine.escalation_id)) == 1, 30, "demo mail")
    wait_until(lambda: len(every_mail(stack, theirs.escalation_id)) == 1, 30, "other mail")
    [(to_mine, mail)] = every_mail(stack, mine.escalation_id)
    [(to_theirs, _)] = every_mail(stack, theirs.escalation_id)
    assert CASEWORKER in to_mine and OTHER_CASEWORKER not in to_mine
    assert OTHER_CASEWORKER in to_theirs and CASEWORKER not in to_theirs
    query = parse_qs(urlparse(ack_link(mail)).query)
    assert query["person"] == ["W-1"] and query["receiver"] == ["caseworker"]


def test_an_agency_without_configuration_reaches_only_shared_receivers_and_pages_operators(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    ghost = make_escalation(
        agency_id="ghost-agency",
        caseworker_id="W-1",
        recipients=["caseworker", "supervisor", "law_enforcement"],
        severity="critical",
    )
    publish(producer, ghost)
    wait_until(
        lambda: any(
            r.json()["escalation_id"] == ghost.escalation_id for r in stack.http.on("/hooks/le")
        ),
        30,
        "law enforcement webhook",
    )
    wait_until(lambda: bool(every_mail(stack, ghost.escalation_id)), 30, "operators' page")

    def failed() -> dict[str, str]:
        return {
            r["receiver"]: r["reason"]
            for r in notifications(bootstrap, ghost.escalation_id)
            if r["status"] == "failed"
        }

    wait_until(lambda: len(failed()) == 2, 30, "failed records")
    assert failed() == {"caseworker": "unknown_agency", "supervisor": "unknown_agency"}
    [(rcpt, page)] = every_mail(stack, ghost.escalation_id)
    assert rcpt == [OPERATORS]
    text = text_of(page)
    assert "ghost-agency" in page["Subject"] and "What to do now" in text
    for private in (ghost.child_id, "Jane Doe", "red hoodie"):
        assert private not in text and private not in page["Subject"]
    metrics = httpx.get(f"{stack.service.url}/metrics").text
    assert 'reason="unknown_agency"' in metrics


@pytest.fixture(scope="module")
def opened(stack: NotifyStack, producer: KafkaProducer) -> tuple[str, str]:
    """One open escalation of each agency."""
    mine = make_escalation(
        agency_id="demo-agency",
        jurisdiction={"state": "MO", "county": "Jackson"},
        severity="critical",
    )
    theirs = make_escalation(agency_id="other-agency")
    for esc in (mine, theirs):
        publish(producer, esc)
    for esc_id in (mine.escalation_id, theirs.escalation_id):
        wait_until(lambda i=esc_id: bool(every_mail(stack, i)), 30, "opened")  # type: ignore[misc]
    return mine.escalation_id, theirs.escalation_id


def test_operators_read_only_their_own_agencys_escalations(
    stack: NotifyStack, opened: tuple[str, str]
) -> None:
    mine, theirs = opened
    url = stack.service.url
    listed = httpx.get(f"{url}/v1/escalations", headers=bearer(OPERATOR_TOKEN)).json()
    ids = {e["escalation_id"] for e in listed["escalations"]}
    assert mine in ids and theirs not in ids
    assert {e["agency_id"] for e in listed["escalations"]} == {"demo-agency"}
    other = httpx.get(f"{url}/v1/escalations", headers=bearer(OTHER_OPERATOR_TOKEN)).json()
    assert theirs in {e["escalation_id"] for e in other["escalations"]}
    assert mine not in {e["escalation_id"] for e in other["escalations"]}
    detail = httpx.get(f"{url}/v1/escalations/{mine}", headers=bearer(AUDITOR_TOKEN))
    assert detail.status_code == 200
    assert {n["receiver"] for n in detail.json()["notifications"]} >= {"caseworker"}
    # Another agency's id answers exactly as an id that does not exist.
    foreign = httpx.get(f"{url}/v1/escalations/{theirs}", headers=bearer(OPERATOR_TOKEN))
    unknown = httpx.get(f"{url}/v1/escalations/{uuid.uuid4().hex}", headers=bearer(OPERATOR_TOKEN))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()


def test_filters_and_cursor_paging(stack: NotifyStack, opened: tuple[str, str]) -> None:
    mine, _ = opened
    url = f"{stack.service.url}/v1/escalations"
    critical = httpx.get(url, params={"severity": "critical"}, headers=bearer(OPERATOR_TOKEN))
    assert mine in {e["escalation_id"] for e in critical.json()["escalations"]}
    assert all(e["severity"] == "critical" for e in critical.json()["escalations"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(url, params=params, headers=bearer(OPERATOR_TOKEN)).json()
        seen += [e["escalation_id"] for e in page["escalations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = httpx.get(url, headers=bearer(OPERATOR_TOKEN)).json()["escalations"]
    assert seen == [e["escalation_id"] for e in everything] and len(seen) >= 2
    bad = httpx.get(url, params={"due_before": "tomorrow"}, headers=bearer(OPERATOR_TOKEN))
    assert bad.status_code == 422 and "tomorrow" not in bad.text
    worse = httpx.get(url, params={"cursor": "%%%"}, headers=bearer(OPERATOR_TOKEN))
    assert worse.status_code == 422 and "cursor" in worse.text


@pytest.mark.parametrize(
    ("method", "path", "token", "status"),
    [
        ("GET", "/v1/escalations", None, 401),
        ("GET", "/v1/escalations", "not-a-token", 401),
        ("GET", "/v1/escalations/{mine}", None, 401),
        ("GET", "/v1/escalations/{mine}", OTHER_OPERATOR_TOKEN, 404),
        ("GET", "/v1/escalations/{mine}", LE_RECEIVER_TOKEN, 403),  # a receiver reads nothing
        ("POST", "/v1/escalations/{mine}/ack", OTHER_OPERATOR_TOKEN, 404),
        ("POST", "/v1/escalations/{mine}/ack", AUDITOR_TOKEN, 403),
        ("POST", "/v1/escalations/{mine}/ack", NO_PERSON_TOKEN, 403),
        ("POST", "/v1/escalations/{mine}/ack", "not-a-token", 401),
        ("POST", "/v1/escalations/{mine}/ack", None, 422),  # no link token either
    ],
)
def test_every_read_and_write_refuses_another_agencys_token_and_no_token(
    stack: NotifyStack,
    opened: tuple[str, str],
    bootstrap: str,
    method: str,
    path: str,
    token: str | None,
    status: int,
) -> None:
    mine, _ = opened
    response = httpx.request(
        method,
        stack.service.url + path.format(mine=mine),
        headers=bearer(token) if token else {},
        json={} if method == "POST" else None,
    )
    assert response.status_code == status
    assert mine not in response.text or status == 200
    acks = [r for r in read_topic(bootstrap, topics.ACKS) if r.key == mine.encode()]
    assert acks == []


def test_acks_name_people_and_receipts_stop_nothing(
    stack: NotifyStack, producer: KafkaProducer
) -> None:
    esc = make_escalation(recipients=["caseworker", "law_enforcement"])
    publish(producer, esc)
    wait_until(lambda: bool(stack.mails_to(CASEWORKER, esc.escalation_id)), 30, "mail")
    url = f"{stack.service.url}/v1/escalations/{esc.escalation_id}"
    receipt = httpx.post(f"{url}/ack", headers=bearer(LE_RECEIVER_TOKEN), json={})
    assert receipt.status_code == 202 and receipt.json()["stops_reminders"] is False
    state = httpx.get(url, headers=bearer(OPERATOR_TOKEN)).json()
    assert state["status"] == "unacknowledged"
    link = ack_link(stack.mails_to(CASEWORKER, esc.escalation_id)[0])
    by_link = httpx.post(link, data={"note": "called the police"})
    assert by_link.status_code == 202 and by_link.json()["stops_reminders"] is True
    again = httpx.post(link)
    assert again.status_code == 200
    by_operator = httpx.post(f"{url}/ack", headers=bearer(OPERATOR_TOKEN), json={"note": "seen"})
    assert by_operator.status_code == 202
    assert by_operator.json()["acknowledged_by"] == ["receiver:law-enforcement", "W-1", "O-1"]
    state = httpx.get(url, headers=bearer(OPERATOR_TOKEN)).json()
    assert state["status"] == "acknowledged"
    assert [(a["by"], a["via"], a["stops_reminders"]) for a in state["acks"]] == [
        ("receiver:law-enforcement", "api", False),
        ("W-1", "link", True),
        ("O-1", "api", True),
    ]
