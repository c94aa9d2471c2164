"""Acknowledgements and notes from the console, on the real broker with notify in its own
process: the console posts to notify's ack endpoint with a token it mints from the shared ack
secret; notify writes care.acks.v1 and decides what stops the reminders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics
from services.notify.acks import console_ack_token
from tests.integration.notify_support import (
    ACK_SECRET,
    CASEWORKER,
    OPERATOR_TOKEN,
    NotifyStack,
    publish,
    start_stack,
)
from tests.support import make_escalation, read_topic, wait_until

REPEAT_S = 4  # the caseworker is reminded every 4 s (at most twice) until someone acknowledges


@pytest.fixture(scope="module")
def reminding(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotifyStack]:
    """Notify with reminders every few seconds and no escalation level within the test."""
    s = start_stack(
        bootstrap, log_dir, tmp_path_factory.mktemp("console-acks"), repeat=f"{REPEAT_S}s"
    )
    yield s
    s.stop()


def post(stack: NotifyStack, escalation_id: str, person: str, **fields: Any) -> httpx.Response:
    """What services.console does: a token for the person signed in, minted now, as JSON."""
    token = console_ack_token(ACK_SECRET, escalation_id, person, datetime.now(UTC))
    return httpx.post(
        f"{stack.service.url}/v1/escalations/{escalation_id}/ack",
        json={"receiver": "console", "token": token, "person": person, **fields},
    )


def acks_for(bootstrap: str, escalation_id: str) -> list[dict[str, Any]]:
    return [r.json() for r in read_topic(bootstrap, topics.ACKS) if r.key == escalation_id.encode()]


def opened(stack: NotifyStack, producer: KafkaProducer) -> str:
    """A new escalation of demo-agency, once its first mail reached the caseworker (W-1)."""
    esc = make_escalation()
    publish(producer, esc)
    wait_until(lambda: bool(stack.mails_to(CASEWORKER, esc.escalation_id)), 30, "first mail")
    return esc.escalation_id


def test_notes_stop_nothing_and_a_console_acknowledgement_stops_the_reminders(
    reminding: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    noted, acked = opened(reminding, producer), opened(reminding, producer)

    # (b, c) A note on one escalation, its form sent twice, then another note: two records.
    note_id = uuid.uuid4().hex
    note = {"kind": "note", "note_id": note_id, "note": "left a voicemail"}
    first = post(reminding, noted, "W-1", **note)
    assert first.status_code == 202, first.text
    assert first.json() == {
        "escalation_id": noted,
        "status": "noted",
        "note_id": note_id,
        "noted_by": "W-1",
        "noted_at": first.json()["noted_at"],
        "stops_reminders": False,
    }
    again = post(reminding, noted, "W-1", **note)
    assert again.status_code == 200 and again.json() == first.json()
    other = post(reminding, noted, "S-1", kind="note", note_id=uuid.uuid4().hex, note="on it")
    assert other.status_code == 202

    # (a) On the other escalation, the caseworker adds a note, then acknowledges.
    before = post(reminding, acked, "W-1", kind="note", note_id=uuid.uuid4().hex, note="calling")
    assert before.status_code == 202
    ack = post(reminding, acked, "W-1", note="reached the family")
    assert ack.status_code == 202, ack.text
    assert ack.json()["status"] == "acknowledged"
    assert ack.json()["acknowledged_by"] == ["W-1"] and ack.json()["stops_reminders"] is True

    # The noted one is reminded; the acknowledged one never is.
    wait_until(lambda: len(reminding.mails_to(CASEWORKER, noted)) >= 2, 30, "a reminder")
    time.sleep(REPEAT_S + 1)
    assert len(reminding.mails_to(CASEWORKER, acked)) == 1

    wait_until(lambda: len(acks_for(bootstrap, noted)) == 2, 30, "the two notes")
    notes = acks_for(bootstrap, noted)
    assert [(n["kind"], n["person_id"], n["via"], n["stops"]) for n in notes] == [
        ("note", "W-1", "console", False),
        ("note", "S-1", "console", False),
    ]
    assert notes[0]["note_id"] == note_id and notes[0]["receiver"] == "console"
    assert [n["note_id"] for n in notes].count(note_id) == 1
    records = acks_for(bootstrap, acked)
    assert [(r.get("kind"), r["person_id"], r["via"], r["stops"]) for r in records] == [
        ("note", "W-1", "console", False),
        (None, "W-1", "console", True),
    ]
    assert records[1]["receiver"] == "console" and records[1]["note"] == "reached the family"

    # The operators' API: only the acknowledgement counts; the notes are listed apart.
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    state = httpx.get(f"{reminding.service.url}/v1/escalations/{noted}", headers=headers).json()
    assert state["status"] == "unacknowledged" and state["acknowledged_by"] == []
    assert [n["by"] for n in state["notes"]] == ["W-1", "S-1"]
    state = httpx.get(f"{reminding.service.url}/v1/escalations/{acked}", headers=headers).json()
    assert state["status"] == "acknowledged" and state["acknowledged_by"] == ["W-1"]


def test_a_console_token_for_one_person_does_not_act_for_another(
    reminding: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    """(d) W-1's token with person S-1, and a console token naming nobody: 403, nothing
    written, and the reminders go on."""
    esc_id = opened(reminding, producer)
    url = f"{reminding.service.url}/v1/escalations/{esc_id}/ack"
    token = console_ack_token(ACK_SECRET, esc_id, "W-1", datetime.now(UTC))
    for body in (
        {"receiver": "console", "token": token, "person": "S-1"},
        {"receiver": "console", "token": token},
        {
            "receiver": "console",
            "token": token,
            "person": "S-1",
            "kind": "note",
            "note_id": uuid.uuid4().hex,
            "note": "x",
        },
    ):
        answer = httpx.post(url, json=body)
        assert answer.status_code == 403, answer.text
        assert token not in answer.text
    time.sleep(1)
    assert acks_for(bootstrap, esc_id) == []
    wait_until(lambda: len(reminding.mails_to(CASEWORKER, esc_id)) >= 2, 30, "a reminder")
