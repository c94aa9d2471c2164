"""The notify core without Kafka: a Notifier built on the in-memory notification log and record
writer, fake channels and a simulated clock."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.common import topics
from services.common.escalations import Escalation
from services.common.people import People, Person
from services.notify.channels.base import Delivery, DeliveryError
from services.notify.config import load_routing
from services.notify.metrics import NotifyMetrics
from services.notify.pipeline import Notifier
from services.notify.records import Ack, OpenEntry
from services.notify.retry import RetryPolicy
from services.notify.routing import Routing
from services.notify.store import MemoryNotificationLog, MemoryRecordWriter
from services.notify.templates import Templates
from tests.support import make_escalation

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

ROUTING = """\
version: 1
defaults: {repeat_interval: 30m, ack_timeout: 1h, send_resolved: true, max_reminders: 2}
receivers:
  - name: law-enforcement
    shared: true
    webhook: {url: "https://le.example/hook"}
route:
  receiver: caseworker
  routes:
    - match: {recipient_class: supervisor}
      receiver: supervisor
    - match: {recipient_class: director}
      receiver: director
    - match: {recipient_class: law_enforcement}
      receiver: law-enforcement
"""

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
"""

PEOPLE = People(
    [
        Person(
            id="W-1",
            agency_id="demo-agency",
            name="Alex Rivera",
            email="alex@agency.example",
            roles=("caseworker",),
        ),
        Person(
            id="S-1",
            agency_id="demo-agency",
            name="Jordan Price",
            email="jordan@agency.example",
            roles=("supervisor",),
        ),
        Person(
            id="W-1",
            agency_id="other-agency",
            name="Dana Ortiz",
            email="dana@other.example",
            roles=("caseworker",),
        ),
    ]
)


def write_policy(directory: Path, routing: str = ROUTING, agency: str = AGENCY) -> Path:
    """routing.yaml and agencies/demo-agency.yaml in `directory`; the routing file's path."""
    (directory / "agencies").mkdir(parents=True, exist_ok=True)
    (directory / "agencies" / "demo-agency.yaml").write_text(agency)
    (directory / "routing.yaml").write_text(routing)
    return directory / "routing.yaml"


class FakeChannel:
    """Records every attempt; fails as told (a list of errors consumed in order, then succeeds)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.attempts: list[Delivery] = []
        self.failures: list[DeliveryError] = []

    async def send(self, delivery: Delivery) -> None:
        self.attempts.append(delivery)
        if self.failures:
            raise self.failures.pop(0)

    def to(self, receiver: str) -> list[Delivery]:
        return [d for d in self.attempts if d.receiver == receiver]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Stack:
    def __init__(
        self,
        routing: Routing,
        templates: Templates,
        log: MemoryNotificationLog,
        people: People = PEOPLE,
    ) -> None:
        self.clock = Clock()
        self.log = log
        self.writer = MemoryRecordWriter()
        self.email, self.webhook = FakeChannel("email"), FakeChannel("webhook")
        self.slept: list[float] = []

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        self.notifier = Notifier(
            routing=routing,
            templates=templates,
            channels={"email": self.email, "webhook": self.webhook, "sms": FakeChannel("sms")},
            ledger=log,
            people=people,
            producer=self.writer,
            metrics=NotifyMetrics(CollectorRegistry()),
            retry=RetryPolicy(max_attempts=3, base_s=1, max_s=4),
            ack_secret="unit-ack-secret",
            public_url="https://notify.example",
            clock=self.clock,
            sleep=sleep,
            rng=random.Random(7),
        )

    def statuses(self, receiver: str) -> list[str]:
        return [
            json.loads(r.value or b"{}")["status"]
            for r in self.writer.records
            if r.topic == topics.NOTIFICATIONS
            and json.loads(r.value or b"{}")["receiver"] == receiver
        ]


@pytest.fixture
def routing(tmp_path: Path) -> Routing:
    return load_routing(write_policy(tmp_path))


@pytest.fixture
def templates() -> Templates:
    return Templates(ROOT / "rules" / "templates")


def escalation(**kw: Any) -> Escalation:
    """A firing escalation created at T0, due two hours later."""
    return make_escalation(**{"created_at": T0, "due_at": T0 + timedelta(hours=2), **kw})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_retryable_failure_is_tried_again_then_delivered_once(
    routing: Routing, templates: Templates
) -> None:
    stack = Stack(routing, templates, MemoryNotificationLog())
    stack.email.failures = [DeliveryError("timeout", retryable=True)]
    run(stack.notifier.handle(escalation(), partition=0))
    assert len(stack.email.to("caseworker")) == 2
    assert stack.email.to("caseworker")[0].address == "alex@agency.example"
    assert stack.statuses("caseworker") == ["retrying", "delivered"]
    assert stack.slept and stack.slept[0] <= 1.2  # backoff from the policy, jittered
    assert len(stack.log.sent) == 1


def test_a_permanent_failure_is_final_and_not_retried(
    routing: Routing, templates: Templates
) -> None:
    stack = Stack(routing, templates, MemoryNotificationLog())
    stack.webhook.failures = [DeliveryError("http_4xx", retryable=False)]
    run(stack.notifier.handle(escalation(recipients=["law_enforcement"]), partition=0))
    assert len(stack.webhook.attempts) == 1
    assert stack.statuses("law-enforcement") == ["failed"]


def test_a_restarted_notifier_does_not_deliver_again(
    routing: Routing, templates: Templates
) -> None:
    log = MemoryNotificationLog()
    esc = escalation()
    first = Stack(routing, templates, log)
    run(first.notifier.handle(esc, partition=0))
    again = Stack(routing, templates, log)  # same log: what a restart reads back
    run(again.notifier.handle(esc, partition=0))
    assert len(first.email.attempts) == 1 and again.email.attempts == []


def test_reminders_then_the_next_level_on_the_simulated_clock(
    routing: Routing, templates: Templates
) -> None:
    stack = Stack(routing, templates, MemoryNotificationLog())
    run(stack.notifier.handle(escalation(), partition=0))
    stack.clock.now = T0 + timedelta(minutes=31)
    run(stack.notifier.tick(None))
    assert len(stack.email.to("caseworker")) == 2  # the first reminder
    assert stack.email.to("supervisor") == []
    stack.clock.now = T0 + timedelta(minutes=61)
    run(stack.notifier.tick(None))
    assert len(stack.email.to("caseworker")) == 3  # second reminder, then no more (max 2)
    [up] = stack.email.to("supervisor")  # nobody acknowledged within the ack timeout
    assert up.address == "jordan@agency.example"
    stack.clock.now = T0 + timedelta(hours=3)
    run(stack.notifier.tick(None))
    assert len(stack.email.to("caseworker")) == 3


def test_an_acknowledgement_stops_reminders_and_escalation(
    routing: Routing, templates: Templates
) -> None:
    stack = Stack(routing, templates, MemoryNotificationLog())
    esc = escalation()
    run(stack.notifier.handle(esc, partition=0))
    run(
        stack.log.record_ack(
            Ack(escalation_id=esc.escalation_id, receiver="caseworker", acked_at=stack.clock.now)
        )
    )
    stack.clock.now = T0 + timedelta(hours=3)
    run(stack.notifier.tick(None))
    assert len(stack.email.attempts) == 1


def test_resolution_reaches_who_was_told_and_closes_the_escalation(
    routing: Routing, templates: Templates
) -> None:
    stack = Stack(routing, templates, MemoryNotificationLog())
    esc = escalation()
    run(stack.notifier.handle(esc, partition=0))
    resolved = esc.model_copy(update={"status": "resolved"})
    run(stack.notifier.handle(resolved, partition=0))
    assert len(stack.email.to("caseworker")) == 2
    assert esc.escalation_id not in stack.log.open


def test_an_open_escalation_keeps_its_plan_when_routing_changes(
    routing: Routing, templates: Templates, tmp_path: Path
) -> None:
    """The plan is made when the escalation opens; a notifier started with other routing
    (its supervisor route removed) still escalates that escalation as first planned."""
    log = MemoryNotificationLog()
    first = Stack(routing, templates, log)
    run(first.notifier.handle(escalation(), partition=0))
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        ROUTING.replace(
            "    - match: {recipient_class: supervisor}\n      receiver: supervisor\n", ""
        )
    )
    later = Stack(load_routing(changed), templates, log)
    later.clock.now = T0 + timedelta(minutes=61)
    run(later.notifier.tick(None))
    assert [d.address for d in later.email.to("supervisor")] == ["jordan@agency.example"]


def test_an_entry_an_older_release_stored_is_planned_once_and_escalates(
    routing: Routing, templates: Templates
) -> None:
    """Open entries from before plans were stored ([receiver, class] pairs) are planned from
    today's routing on the first tick."""
    log = MemoryNotificationLog()
    esc = escalation()
    older = {
        "escalation": esc.model_dump(mode="json", exclude_none=True),
        "partition": 0,
        "first_sent_at": T0.isoformat(),
        "targets": [["caseworker", "caseworker"]],
    }
    log.open[esc.escalation_id] = OpenEntry.model_validate_json(json.dumps(older))
    stack = Stack(routing, templates, log)
    stack.clock.now = T0 + timedelta(minutes=61)
    run(stack.notifier.tick(None))
    assert len(stack.email.to("supervisor")) == 1 and len(stack.email.to("caseworker")) == 2
    assert log.open[esc.escalation_id].plan is not None  # stored again, with its plan


def test_a_planned_receiver_since_removed_from_routing_is_a_failed_record_not_a_crash(
    routing: Routing, templates: Templates, tmp_path: Path
) -> None:
    log = MemoryNotificationLog()
    first = Stack(routing, templates, log)
    run(first.notifier.handle(escalation(), partition=0))
    changed = write_policy(
        tmp_path / "without-supervisor",
        ROUTING.replace(
            "    - match: {recipient_class: supervisor}\n      receiver: supervisor\n", ""
        ),
        AGENCY.replace("  - name: supervisor\n    email: {to_staff: supervisor}\n", ""),
    )
    later = Stack(load_routing(changed), templates, log)
    later.clock.now = T0 + timedelta(minutes=61)
    run(later.notifier.tick(None))
    assert later.email.to("supervisor") == []
    [record] = [
        json.loads(r.value or b"{}")
        for r in later.writer.records
        if json.loads(r.value or b"{}")["receiver"] == "supervisor"
    ]
    assert (record["status"], record["reason"], record["channel"]) == (
        "failed",
        "unknown_receiver",
        "none",
    )
