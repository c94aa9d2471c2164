"""Silences on the real stack: made over the API (refused for another agency, an auditor, a bad
field), kept in care.silences.v1 across a restart of notify, muting a silenceable rule and
redirecting a duty to the agency's fallback receiver; every change in the audit trail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from services.common import topics
from tests.integration.notify_support import (
    AUDITOR_TOKEN,
    CASEWORKER,
    DIRECTOR,
    OPERATOR_TOKEN,
    OTHER_OPERATOR_TOKEN,
    NotifyStack,
    publish,
    start_stack,
    text_of,
)
from tests.support import make_escalation, read_topic, wait_until

FALLBACK = "\nfallback_receiver: director\n"


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotifyStack]:
    s = start_stack(bootstrap, log_dir, tmp_path_factory.mktemp("silences"), demo_agency=FALLBACK)
    yield s
    s.stop()


def api(stack: NotifyStack, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{stack.service.url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kw,
    )


def body(**kw: Any) -> dict[str, Any]:
    ends = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    return {"ends_at": ends, "reason": "county systems migration", **kw}


def records(bootstrap: str, escalation_id: str) -> list[dict[str, Any]]:
    return [
        r.json()
        for r in read_topic(bootstrap, topics.NOTIFICATIONS)
        if r.json().get("escalation_id") == escalation_id
    ]


def test_silences_are_refused_to_other_agencies_auditors_and_bad_fields(
    stack: NotifyStack,
) -> None:
    r = api(stack, "POST", "/v1/silences", AUDITOR_TOKEN, json=body(match={"county": "Jackson"}))
    assert r.status_code == 403
    secret = "Maya-Lopez-label"
    r = api(stack, "POST", "/v1/silences", OPERATOR_TOKEN, json=body(match={secret: "x"}))
    assert r.status_code == 422 and secret not in r.text and "match" in r.text
    for sent in ({**body(match={"county": "x"}), secret: 1}, body(match={secret: ""})):
        r = api(stack, "POST", "/v1/silences", OPERATOR_TOKEN, json=sent)
        assert r.status_code == 422 and secret not in r.text
    r = api(stack, "POST", "/v1/silences", OPERATOR_TOKEN, json=body(match={"county": "Jackson"}))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["state"] == "active" and made["created_by"] == "O-1"
    assert api(stack, "GET", "/v1/silences", OTHER_OPERATOR_TOKEN).json() == {"silences": []}
    gone = api(stack, "DELETE", f"/v1/silences/{made['silence_id']}", OTHER_OPERATOR_TOKEN)
    assert gone.status_code == 404
    r = api(stack, "DELETE", f"/v1/silences/{made['silence_id']}", OPERATOR_TOKEN)
    assert r.status_code == 200 and r.json()["state"] == "expired"
    listed = api(stack, "GET", "/v1/silences?state=expired", AUDITOR_TOKEN).json()["silences"]
    assert made["silence_id"] in [s["silence_id"] for s in listed]
    assert httpx.get(f"{stack.service.url}/v1/silences").status_code == 401


def test_a_silence_survives_a_restart_mutes_a_tier_change_and_redirects_a_duty(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    county = f"County-{uuid.uuid4().hex[:6]}"
    r = api(stack, "POST", "/v1/silences", OPERATOR_TOKEN, json=body(match={"county": county}))
    assert r.status_code == 201, r.text
    silence_id = r.json()["silence_id"]
    stack.service.stop()
    stack.service.start()  # what it knows of silences it reads back from care.silences.v1

    where = {"state": "MO", "county": county}
    risk = make_escalation(
        rule_id="risk.tier-changed",
        silenceable=True,
        recipients=["caseworker"],
        jurisdiction=where,
        due_at=None,
    )
    duty = make_escalation(recipients=["caseworker", "law_enforcement"], jurisdiction=where)
    publish(producer, risk)
    publish(producer, duty)

    wait_until(lambda: bool(stack.mails_to(DIRECTOR, duty.escalation_id)), 60, "the fallback")
    [told] = stack.mails_to(DIRECTOR, duty.escalation_id)
    assert duty.child_id in text_of(told)
    wait_until(
        lambda: any(duty.child_id in r.body.decode() for r in stack.http.on("/hooks/le")),
        60,
        "law enforcement, whom no silence touches",
    )
    wait_until(lambda: len(records(bootstrap, risk.escalation_id)) >= 1, 60, "the muted record")
    [muted] = records(bootstrap, risk.escalation_id)
    assert (muted["status"], muted["silence_id"]) == ("suppressed", silence_id)
    [redirected] = [
        r for r in records(bootstrap, duty.escalation_id) if r["receiver"] == "caseworker"
    ]
    assert redirected["status"] == "suppressed"
    assert (redirected["silence_id"], redirected["redirected_to"]) == (silence_id, "director")
    assert stack.mails_to(CASEWORKER, duty.escalation_id) == []
    assert stack.mails_to(CASEWORKER, risk.escalation_id) == []

    audit = [
        r.json()
        for r in read_topic(bootstrap, topics.AUDIT)
        if r.json().get("object_id") == silence_id
    ]
    assert [(a["action"], a["actor"], a["via"]) for a in audit] == [
        ("silence.create", "O-1", "api")
    ]
    assert county not in json.dumps(audit)


def test_the_command_line_makes_lists_and_expires_a_silence_notify_then_shows(
    stack: NotifyStack, bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from services.cli import main

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    common = ["--agency", "demo-agency", "--by", "O-1"]
    bad = ["silence", "add", *common, "--match", "colour=red", "--for", "2h", "--reason", "x y z"]
    assert main([*bad, "--policy", str(stack.policy_dir)]) == 2
    assert "unknown label" in capsys.readouterr().err
    made = ["silence", "add", *common, "--receiver", "caseworker", "--for", "2h"]
    assert main([*made, "--reason", "nope", "--policy", str(stack.policy_dir)]) == 2
    assert "no fallback_receiver" in capsys.readouterr().err
    add = ["silence", "add", *common, "--match", "rule_id=risk.tier-changed", "--for", "3h"]
    assert main([*add, "--reason", "risk review day", "--policy", str(stack.policy_dir)]) == 0
    silence_id = capsys.readouterr().out.strip()
    assert main(["silence", "list", "--agency", "demo-agency", "--state", "active"]) == 0
    assert silence_id in capsys.readouterr().out
    assert main(["silence", "list", "--agency", "other-agency"]) == 0
    assert silence_id not in capsys.readouterr().out

    def shown() -> dict[str, Any]:
        listed = api(stack, "GET", "/v1/silences", OPERATOR_TOKEN).json()["silences"]
        return next((s for s in listed if s["silence_id"] == silence_id), {})

    wait_until(lambda: shown().get("state") == "active", 30, "notify to read the silence")
    assert shown()["created_by"] == "cli:O-1"
    assert main(["silence", "expire", silence_id, "--agency", "other-agency", "--by", "O-2"]) == 1
    assert main(["silence", "expire", silence_id, "--agency", "demo-agency", "--by", "O-1"]) == 0
    wait_until(lambda: shown().get("state") == "expired", 30, "notify to read the expiry")
