"""Escalation levels, on-call schedules and silences in the notify core, on a simulated clock:
the in-memory notification log and record writer, fake channels (tests/unit/test_notify_pipeline)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common import topics
from services.common.people import People, Person
from services.notify.config import load_routing
from services.notify.records import Ack
from services.notify.routing import Routing
from services.notify.silences import Silence, SilenceRequest, request_problems
from services.notify.store import MemoryNotificationLog
from services.notify.templates import Templates
from tests.unit.test_notify_pipeline import (
    ROOT,
    ROUTING,
    T0,
    Stack,
    escalation,
    run,
    write_policy,
)

# T0 is 2026-11-23 20:00 in Chicago. The schedule hands over every hour from 20:00: C-1, then
# C-2, then C-1 again; level 1 (the supervisor) after the 1 h ack timeout, level 2 (whoever is
# on call) 30 min later, i.e. at 21:30, when C-2 is on call.
AGENCY = """\
version: 1
agency_id: demo-agency
name: Demo County
time_zone: America/Chicago
contact_24_7: "+1-555-0100"
receivers:
  - name: caseworker
    email: {to_staff: caseworker}
  - name: supervisor
    email: {to_staff: supervisor}
  - name: director
    email: {to: director@agency.example}
  - name: county-hook
    webhook: {url: "https://county.example/hook"}
    fallback_receiver: director
schedules:
  - name: on-call
    layers:
      - name: hourly
        members: [C-1, C-2]
        rotation: 1h
        starts: "2026-11-23T20:00"
escalation_policies:
  - name: standard
    levels:
      - notify: [{receiver: supervisor}]
        wait: 30m
      - notify: [{schedule: on-call}]
        wait: 1h
  - name: nobody-first
    levels:
      - notify: [{person: GONE}]
        wait: 2h
      - notify: [{receiver: director}]
escalation_policy: standard
fallback_receiver: director
routes:
  - match: {rule_id: policy.nobody-first}
    receiver: caseworker
    escalation_policy: nobody-first
  - match: {rule_id: policy.county}
    receiver: county-hook
"""


def person(pid: str, role: str, email: str | None, disabled: bool = False) -> Person:
    return Person(
        id=pid,
        agency_id="demo-agency",
        name=pid,
        email=email,
        roles=(role,),
        disabled=disabled,
    )


PEOPLE = People(
    [
        person("W-1", "caseworker", "alex@agency.example"),
        person("S-1", "supervisor", "jordan@agency.example"),
        person("C-1", "on_call", "casey@agency.example"),
        person("C-2", "on_call", "quinn@agency.example"),
        person("GONE", "supervisor", "gone@agency.example", disabled=True),
    ]
)


@pytest.fixture
def routing(tmp_path: Path) -> Routing:
    return load_routing(write_policy(tmp_path, ROUTING, AGENCY))


@pytest.fixture
def stack(routing: Routing) -> Stack:
    return Stack(routing, Templates(ROOT / "rules" / "templates"), MemoryNotificationLog(), PEOPLE)


def at(stack: Stack, after: timedelta) -> None:
    stack.clock.now = T0 + after
    run(stack.notifier.tick(None))


def records(stack: Stack, receiver: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.value or b"{}")
        for r in stack.writer.records
        if r.topic == topics.NOTIFICATIONS and json.loads(r.value or b"{}")["receiver"] == receiver
    ]


def silence(**kw: Any) -> Silence:
    base: dict[str, Any] = {
        "silence_id": "s-1",
        "agency_id": "demo-agency",
        "starts_at": T0 - timedelta(hours=1),
        "ends_at": T0 + timedelta(hours=4),
        "reason": "planned",
        "created_by": "O-1",
        "created_at": T0 - timedelta(hours=1),
    }
    return Silence(**{**base, **kw})


def test_level_one_then_level_two_reaches_whoever_was_on_call_when_it_was_due(
    stack: Stack,
) -> None:
    run(stack.notifier.handle(escalation(), partition=0))
    at(stack, timedelta(minutes=59))
    assert stack.email.to("supervisor") == []
    at(stack, timedelta(minutes=61))
    assert [d.address for d in stack.email.to("supervisor")] == ["jordan@agency.example"]
    at(stack, timedelta(minutes=89))
    assert stack.email.to("schedule:on-call") == []
    # The tick runs late, at 22:10, when C-1 is on call again: level 2 was due at 21:30 (C-2).
    at(stack, timedelta(hours=2, minutes=10))
    [page] = stack.email.to("schedule:on-call")
    assert page.address == "quinn@agency.example" and page.person_id == "C-2"
    [record] = [r for r in records(stack, "schedule:on-call") if r["status"] == "delivered"]
    assert record["step"] == "e2" and record["person_id"] == "C-2"
    # Its link acknowledges as that person, for the receiver the level made.
    from urllib.parse import parse_qs, urlsplit

    from services.notify.ack_api import AckIn

    query = parse_qs(urlsplit(page.message.data["ack_url"]).query)
    link = AckIn(receiver=query["receiver"][0], token=query["token"][0], person=query["person"][0])
    assert (link.receiver, link.person) == ("schedule:on-call", "C-2")


def test_an_acknowledgement_by_the_agencys_person_stops_the_chain(stack: Stack) -> None:
    esc = escalation()
    run(stack.notifier.handle(esc, partition=0))
    at(stack, timedelta(minutes=61))
    ack = Ack(
        escalation_id=esc.escalation_id,
        receiver="supervisor",
        acked_at=stack.clock.now,
        person_id="S-1",
        agency_id="demo-agency",
    )
    run(stack.log.record_ack(ack))
    at(stack, timedelta(hours=5))
    assert stack.email.to("schedule:on-call") == []


def test_a_level_that_reaches_nobody_falls_through_at_once_and_is_recorded(
    stack: Stack,
) -> None:
    run(stack.notifier.handle(escalation(rule_id="policy.nobody-first"), partition=0))
    at(stack, timedelta(minutes=61))
    [nobody] = records(stack, "person:GONE")
    assert nobody["status"] == "failed" and nobody["reason"] == "no_contact"
    assert stack.email.to("director") == []
    at(stack, timedelta(minutes=62))  # the next tick: level 2 without its 2 h wait
    assert [d.address for d in stack.email.to("director")] == ["director@agency.example"]


def test_a_silence_mutes_a_silenceable_rule(stack: Stack) -> None:
    run(stack.log.put_silence(silence(match={"rule_id": "risk.tier-changed"})))
    risk = escalation(
        rule_id="risk.tier-changed", silenceable=True, recipients=["caseworker"], due_at=None
    )
    run(stack.notifier.handle(risk, partition=0))
    assert stack.email.attempts == []
    [record] = records(stack, "caseworker")
    assert record["status"] == "suppressed" and record["silence_id"] == "s-1"
    assert "redirected_to" not in record


def test_a_silence_redirects_a_duty_to_the_fallback_and_never_touches_law_enforcement(
    stack: Stack,
) -> None:
    run(stack.log.put_silence(silence(match={"severity": "high"})))
    # Even marked silenceable by a record written straight to the topic, a federal duty is not.
    duty = escalation(silenceable=True, recipients=["caseworker", "law_enforcement"])
    run(stack.notifier.handle(duty, partition=0))
    assert stack.email.to("caseworker") == []
    [record] = records(stack, "caseworker")
    assert record["status"] == "suppressed"
    assert (record["silence_id"], record["redirected_to"]) == ("s-1", "director")
    assert [d.address for d in stack.email.to("director")] == ["director@agency.example"]
    assert len(stack.webhook.to("law-enforcement")) == 1


def test_an_expired_or_other_agencys_silence_does_nothing(stack: Stack) -> None:
    run(
        stack.log.put_silence(
            silence(match={"rule_id": "risk.tier-changed"}, expired_at=T0 - timedelta(minutes=1))
        )
    )
    run(stack.log.put_silence(silence(silence_id="s-2", agency_id="other-agency")))
    risk = escalation(rule_id="risk.tier-changed", silenceable=True, recipients=["caseworker"])
    run(stack.notifier.handle(risk, partition=0))
    assert len(stack.email.to("caseworker")) == 1


def test_a_maintenance_window_routes_a_receiver_to_its_fallback(stack: Stack) -> None:
    run(stack.log.put_silence(silence(kind="maintenance", receiver="county-hook")))
    run(stack.notifier.handle(escalation(rule_id="policy.county"), partition=0))
    assert stack.webhook.to("county-hook") == []
    [record] = records(stack, "county-hook")
    assert (record["status"], record["reason"], record["redirected_to"]) == (
        "suppressed",
        "maintenance",
        "director",
    )
    assert len(stack.email.to("director")) == 1
    # After the window, the webhook is back.
    stack.clock.now = T0 + timedelta(hours=5)
    later = escalation(rule_id="policy.county", created_at=T0 + timedelta(hours=5))
    run(stack.notifier.handle(later, partition=0))
    assert len(stack.webhook.to("county-hook")) == 1


def test_silence_requests_name_the_field_and_never_repeat_it(routing: Routing) -> None:
    def problems(**kw: Any) -> list[tuple[str, str]]:
        body = {"ends_at": T0 + timedelta(hours=2), "reason": "planned work", **kw}
        return request_problems(SilenceRequest(**body), "demo-agency", routing, T0)

    assert problems(match={"rule_id": "risk.tier-changed"}) == []
    assert problems(receiver="county-hook") == []
    [(field, why)] = problems(match={"secret-label-x": "v"})
    assert field == "match" and "secret-label-x" not in why
    assert problems() == [
        ("match", "a silence needs a matcher (or a receiver, for a maintenance window)")
    ]
    assert problems(receiver="caseworker") == [
        ("receiver", "has no fallback_receiver to take its messages during the window")
    ]
    assert problems(receiver="schedule:on-call") == [
        ("receiver", "not one of this agency's receivers")
    ]
    assert problems(match={"severity": "loud"}) == [("match.severity", "not a known severity")]
    safe_only = (
        "use only letters, digits, spaces, _ . : - and |, with at most one .* in each alternative"
    )
    assert problems(match_re={"county": ".*.*.*Z"}) == [("match_re.county", safe_only)]
    assert problems(match_re={"rule_id": "("}) == [("match_re.rule_id", safe_only)]
    assert problems(match_re={"rule_id": "(.|.)*X"}) == [("match_re.rule_id", safe_only)]
    assert problems(match_re={"rule_id": "a{99999999999}"}) == [("match_re.rule_id", safe_only)]
    assert problems(match_re={"rule_id": "risk.*|policy.ncic.*"}) == []
    assert problems(match={"receiver": "law-enforcement"}) == [
        ("match.receiver", "not one of this agency's receivers")
    ]
    assert problems(match={"county": "x"}, reason="ok \u202eJane Doe") == [
        ("reason", "one line of visible text, without control characters")
    ]
    later = {"match": {"county": "x"}, "starts_at": T0 + timedelta(days=40)}
    assert ("starts_at", "a silence starts within 31 days") in problems(**later)
    earlier = {"match": {"county": "x"}, "starts_at": T0 - timedelta(hours=1)}
    assert problems(**earlier) == [("starts_at", "is in the past: a silence starts now or later")]
    long = {"match": {"county": "Jackson"}, "ends_at": T0 + timedelta(days=40)}
    assert problems(**long) == [("ends_at", "a silence lasts at most 31 days")]
    past = {"match": {"county": "Jackson"}, "ends_at": T0 - timedelta(minutes=1)}
    assert problems(**past) == [("ends_at", "must be after starts_at")]
    asked = SilenceRequest(match={"county": "x"}, ends_at=T0 + timedelta(hours=1), reason="why")
    assert request_problems(asked, "no-such-agency", routing, T0) == [
        ("agency", "this agency has no configuration")
    ]
    many = [silence(silence_id=f"s-{i}") for i in range(100)]
    assert request_problems(asked, "demo-agency", routing, T0, many) == [
        ("silences", "this agency has 100 silences not yet ended: expire some")
    ]
    ended = [silence(silence_id=f"s-{i}", expired_at=T0 - timedelta(minutes=1)) for i in range(100)]
    assert request_problems(asked, "demo-agency", routing, T0, ended) == []


def test_policy_levels_name_known_schedules_people_and_policies(tmp_path: Path) -> None:
    broken = (
        AGENCY.replace("{schedule: on-call}", "{schedule: nights}")
        .replace("escalation_policy: standard", "escalation_policy: missing")
        .replace("fallback_receiver: director\n", "fallback_receiver: law-enforcement\n")
    )
    with pytest.raises(ValueError) as info:
        load_routing(write_policy(tmp_path, ROUTING, broken))
    text = str(info.value)
    assert "escalation_policies.0.levels.1.notify.0.schedule: unknown schedule 'nights'" in text
    assert "escalation_policy: unknown escalation policy 'missing'" in text
    assert "'law-enforcement' is a shared receiver: name one of its own" in text


def test_a_redirect_whose_stand_in_failed_is_sent_to_the_receiver_after_all(
    stack: Stack,
) -> None:
    """A duty is never hidden: if the fallback could not take it, the silence gives way."""
    from services.notify.channels.base import DeliveryError

    run(stack.log.put_silence(silence(match={"severity": "high"})))
    stack.email.failures = [DeliveryError("smtp_5xx", retryable=False)]  # the director's mail
    run(stack.notifier.handle(escalation(recipients=["caseworker"]), partition=0))
    [record] = [r for r in records(stack, "caseworker") if r["status"] != "retrying"]
    assert record["status"] == "delivered" and "silence_id" not in record
    assert [d.address for d in stack.email.to("caseworker")] == ["alex@agency.example"]


def test_a_deadline_makes_a_rule_a_duty_no_silence_mutes(stack: Stack) -> None:
    run(stack.log.put_silence(silence(match={"rule_id": "risk.tier-changed"})))
    due = escalation(rule_id="risk.tier-changed", silenceable=True, recipients=["caseworker"])
    run(stack.notifier.handle(due, partition=0))
    [record] = records(stack, "caseworker")
    assert record["redirected_to"] == "director"
    assert len(stack.email.to("director")) == 1


DIGEST_AGENCY = AGENCY.replace(
    "  - match: {rule_id: policy.county}",
    "  - match: {recipient_class: caseworker}\n    receiver: caseworker\n    digest: 1h\n"
    "    continue: true\n  - match: {rule_id: policy.county}",
)


def test_tier_changes_are_gathered_hourly_per_caseworker_and_duties_go_at_once(
    tmp_path: Path,
) -> None:
    stack = Stack(
        load_routing(write_policy(tmp_path, ROUTING, DIGEST_AGENCY)),
        Templates(ROOT / "rules" / "templates"),
        MemoryNotificationLog(),
        PEOPLE,
    )
    changes = [
        escalation(
            rule_id="risk.tier-changed",
            silenceable=True,
            recipients=["caseworker"],
            due_at=None,
            created_at=T0 + timedelta(minutes=minutes),
        )
        for minutes in (5, 10, 20)
    ]
    for esc in changes:
        run(stack.notifier.handle(esc, partition=0))
    duty = escalation(recipients=["caseworker"], created_at=T0 + timedelta(minutes=15))
    run(stack.notifier.handle(duty, partition=0))
    assert [d.escalation_id for d in stack.email.to("caseworker")] == [duty.escalation_id]

    def gathered() -> list[Any]:
        return [d for d in stack.email.to("caseworker") if d.escalation_id != duty.escalation_id]

    at(stack, timedelta(minutes=59))
    assert gathered() == []  # the window (02:00-03:00 UTC) is still open
    at(stack, timedelta(minutes=60))
    [digest] = gathered()
    assert digest.message.subject.startswith("3 updates: ")
    assert all(esc.child_id in digest.message.body for esc in changes)
    assert digest.message.body.count("Acknowledge:") == 3  # each its own link
    delivered = [r for r in records(stack, "caseworker") if r.get("digest_id")]
    assert {r["escalation_id"] for r in delivered} == {e.escalation_id for e in changes}
    assert {r["digest_id"] for r in delivered} == {digest.notification_id}
    at(stack, timedelta(minutes=61))
    assert len(gathered()) == 1  # each went once


def digest_stack(tmp_path: Path) -> Stack:
    return Stack(
        load_routing(write_policy(tmp_path, ROUTING, DIGEST_AGENCY)),
        Templates(ROOT / "rules" / "templates"),
        MemoryNotificationLog(),
        PEOPLE,
    )


def tier_change(minutes: int = 5, **kw: Any) -> Any:
    return escalation(
        rule_id="risk.tier-changed",
        silenceable=True,
        recipients=["caseworker"],
        due_at=None,
        created_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


def test_a_digest_the_channel_refuses_for_good_goes_out_one_by_one(tmp_path: Path) -> None:
    from services.notify.channels.base import Delivery, DeliveryError
    from tests.unit.test_notify_pipeline import FakeChannel

    class CaseworkerFails(FakeChannel):
        async def send(self, delivery: Delivery) -> None:
            self.attempts.append(delivery)
            if delivery.receiver == "caseworker" and self.failures:
                raise self.failures.pop(0)

    stack = digest_stack(tmp_path)
    stack.email = stack.notifier.channels["email"] = CaseworkerFails("email")
    for esc in [tier_change(m) for m in (5, 6)]:
        run(stack.notifier.handle(esc, partition=0))
    stack.email.failures = [DeliveryError("timeout", retryable=True)]  # the digest's try 1
    at(stack, timedelta(minutes=60))
    assert [a.message.subject[:10] for a in stack.email.to("caseworker")] == ["2 updates:"] * 2
    later = [tier_change(m) for m in (65, 66)]
    for esc in later:
        run(stack.notifier.handle(esc, partition=0))
    stack.email.failures = [DeliveryError("smtp_5xx", retryable=False)]
    at(stack, timedelta(minutes=120))
    refused, *alone = stack.email.to("caseworker")[2:]
    assert refused.message.subject.startswith("4 updates: ")  # both windows' leftovers
    assert all(not a.message.subject.endswith("updates") for a in alone)
    assert {a.escalation_id for a in alone} >= {e.escalation_id for e in later}
    assert len({a.notification_id for a in alone}) == len(alone)  # each by itself, once


def test_an_escalation_resolved_before_its_digest_is_recorded_not_sent(tmp_path: Path) -> None:
    stack = digest_stack(tmp_path)
    change = tier_change()
    run(stack.notifier.handle(change, partition=0))
    run(stack.notifier.handle(change.model_copy(update={"status": "resolved"}), partition=0))
    at(stack, timedelta(minutes=61))
    assert stack.email.to("caseworker") == []
    [record] = records(stack, "caseworker")
    assert (record["status"], record["reason"]) == ("suppressed", "resolved_before_digest")


def test_a_redirect_to_a_fallback_told_at_the_same_step_waits_for_it(stack: Stack) -> None:
    """The director is the fallback and is told anyway: one message to the director, and the
    caseworker's is recorded redirected (not sent as if the stand-in had failed)."""
    run(stack.log.put_silence(silence(match={"receiver": "caseworker"})))
    run(stack.notifier.handle(escalation(recipients=["caseworker", "director"]), partition=0))
    assert stack.email.to("caseworker") == []
    assert len(stack.email.to("director")) == 1
    [record] = records(stack, "caseworker")
    assert (record["status"], record["redirected_to"]) == ("suppressed", "director")
