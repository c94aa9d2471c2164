"""Chaos, bounded and on loopback only. While a simulated caseload flows in through ingest:
kill -9 the rules worker; kill -9 notify; start a second rules worker and kill -9 the first in
the middle of the rebalance that follows; make the law-enforcement webhook fail and restart the
broker while notify is retrying it. Afterwards every accepted event was evaluated, every expected
first notification reached its sink, and a notification arrived twice only inside the documented
window (notify killed between a channel's answer and the sent-log write), at most once per
delivery in flight at each notify kill.

`bench/chaos.sh N` runs this N times in a row (the loop is not part of `make test`)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.common import topics
from services.common.escalations import Escalation
from services.localdev.simulate import SimConfig, generate
from services.notify.config import load_routing
from services.notify.records import notification_id
from tests.integration.notify_support import start_stack
from tests.integration.services import AUTH, ingest_service, rules_service
from tests.support import Broker, Service, read_topic, supervised, wait_until

MAX_IN_FLIGHT = 16  # escalations notify handles at once: bounds what one kill can repeat
# A stalled worker exits and the test's supervisor starts it again, sooner than by default.
STALL = {"CAREALERT_STALL_TIMEOUT_S": "20", "CAREALERT_STALL_EXIT_GRACE_S": "1"}
WEBHOOK_FAILURES = 30  # 503s the law-enforcement webhook answers around the broker restart


def feed(
    url: str,
    events: list[dict[str, Any]],
    done: threading.Event,
    accepted: list[str],
    errors: list[str],
) -> None:
    """Post events one by one at a steady pace, retrying on 503 (as an agency system would)."""
    try:
        _feed(url, events, accepted, errors)
    finally:
        done.set()


def _feed(url: str, events: list[dict[str, Any]], accepted: list[str], errors: list[str]) -> None:
    with httpx.Client(timeout=15) as client:
        for event in events:
            for _ in range(200):
                try:
                    r = client.post(f"{url}/v1/events", json=event, headers=AUTH)
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                if r.status_code == 202:
                    accepted.append(event["event_id"])
                    break
                if r.status_code != 503:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    return
                time.sleep(0.5)
            time.sleep(0.02)


def diagnose(bootstrap: str, missing: set[str]) -> str:
    """For each event that produced no duty: its child's records on the events topic (offsets,
    types), in the DLQ and on the escalations topic, to tell lost from reordered from refused."""
    events = read_topic(bootstrap, topics.EVENTS)
    by_id = {r.json().get("event_id"): r for r in events}
    lines = []
    for event_id in sorted(missing):
        record = by_id.get(event_id)
        if record is None:
            lines.append(f"{event_id}: not on {topics.EVENTS}")
            continue
        key = record.key
        lines.append(f"{event_id}: {key!r} partition {record.partition}")
        for r in events:
            if r.key == key:
                lines.append(
                    f"  event {r.offset}: {r.json().get('event_type')} {r.json().get('event_id')}"
                )
        for r in read_topic(bootstrap, topics.EVENTS_DLQ):
            if r.key == key:
                lines.append(f"  dlq: {r.headers.get('error', b'').decode()}")
        for r in read_topic(bootstrap, topics.ESCALATIONS):
            if r.key == key:
                lines.append(
                    f"  escalation {r.offset}: {r.json().get('rule_id')} {r.json().get('status')}"
                    f" by {r.json().get('triggered_by')}"
                )
    return "\n".join(lines)


def rebalancing(rules: Service, log_from: int) -> bool:
    """The worker is in a rebalance: its readiness says so, or its log since `log_from` shows
    the group rebalancing (a short rebalance can fall between two readiness polls)."""
    since = rules.log_text()[log_from:]
    if "because it is rebalancing" in since or "Executing _on_partitions_assigned" in since:
        return True
    try:
        r = httpx.get(f"{rules.url}/readyz", timeout=1)
    except httpx.HTTPError:
        return False
    return r.status_code == 503 and "rebalancing" in r.text


def test_kills_a_rebalance_and_a_broker_restart_lose_nothing(log_dir: Path, tmp_path: Path) -> None:
    broker = Broker()
    broker.start()
    ingest = ingest_service(broker.bootstrap, log_dir, CAREALERT_PUBLISH_TIMEOUT_S="3")
    app_id = f"rules-chaos-{uuid.uuid4().hex[:6]}"
    rules = rules_service(broker.bootstrap, log_dir, app_id, tmp_path / "rules", **STALL)
    second = rules_service(broker.bootstrap, log_dir, app_id, tmp_path / "rules-2", **STALL)
    notify = None
    notify_kills = 0
    supervisor = contextlib.ExitStack()
    try:
        ingest.start()
        rules.start()
        notify = start_stack(
            broker.bootstrap,
            log_dir,
            tmp_path,
            CAREALERT_NOTIFY_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
            CAREALERT_RETRY_MAX_ATTEMPTS="30",
            CAREALERT_RETRY_MAX_S="1",
            CAREALERT_STALL_TIMEOUT_S=STALL["CAREALERT_STALL_TIMEOUT_S"],
            CAREALERT_STALL_EXIT_GRACE_S=STALL["CAREALERT_STALL_EXIT_GRACE_S"],
        )
        supervisor.enter_context(supervised(ingest, rules, second, notify.service))
        events = generate(
            SimConfig(
                children=160, days=30, seed=11, end=datetime.now(UTC), agency_id="demo-agency"
            )
        )
        accepted: list[str] = []
        errors: list[str] = []
        done = threading.Event()
        feeder = threading.Thread(
            target=feed, args=(ingest.url, events, done, accepted, errors), daemon=True
        )
        feeder.start()

        def reached(fifths: int) -> None:
            n = fifths * len(events) // 6
            wait_until(lambda: len(accepted) > n, 120, f"{fifths}/6 of the stream")

        reached(1)
        rules.stop(kill=True)
        time.sleep(1)
        rules.start()

        reached(2)
        notify.service.stop(kill=True)
        notify_kills += 1
        time.sleep(1)
        notify.service.start()

        reached(3)
        log_from = len(rules.log_text())
        second.start()  # joins the group: a rebalance; the first worker dies in the middle of it
        wait_until(
            lambda: rebalancing(rules, log_from), 60, "the first worker to see the rebalance"
        )
        rules.stop(kill=True)

        reached(4)
        notify.http.responses.extend([503] * WEBHOOK_FAILURES)
        wait_until(lambda: not notify.http.responses, 60, "the webhook to fail")
        notify.http.responses.extend([503] * WEBHOOK_FAILURES)
        broker.stop()
        time.sleep(3)
        broker.start()

        assert done.wait(300), "the feeder did not finish"
        assert errors == []
        assert len(accepted) == len(events)

        # Every event on the topic was evaluated: each opening and each return produced its duty.
        opened = {e["event_id"] for e in events if e["event_type"] == "missing.opened"}
        located = {e["event_id"] for e in events if e["event_type"] == "missing.located"}
        on_topic = {r.json()["event_id"] for r in read_topic(broker.bootstrap, topics.EVENTS)}
        assert set(accepted) <= on_topic

        def triggers(rule_id: str) -> set[str]:
            return {
                t
                for r in read_topic(broker.bootstrap, topics.ESCALATIONS)
                for t in r.json().get("triggered_by", [])[:1]
                if r.json().get("rule_id") == rule_id
            }

        for wanted, rule_id in (
            (opened, "federal.report-ncmec"),
            (located, "federal.return-screening"),
        ):
            try:
                wait_until(
                    lambda w=wanted, r=rule_id: w <= triggers(r),  # type: ignore[misc]
                    180,
                    f"every {rule_id} trigger",
                )
            except TimeoutError:
                report = diagnose(broker.bootstrap, wanted - triggers(rule_id))
                (log_dir / "chaos-diagnosis.txt").write_text(report)
                raise AssertionError(f"events not evaluated:\n{report}") from None

        # Every expected first notification reached a sink.
        routing = load_routing(notify.policy_dir / "routing.yaml")
        expected: set[str] = set()
        widest = 1
        for r in read_topic(broker.bootstrap, topics.ESCALATIONS):
            esc = Escalation.model_validate_json(r.value)
            if esc.status == "firing":
                targets = routing.route(esc)
                widest = max(widest, len(targets))
                for t in targets:
                    expected.add(notification_id(esc.escalation_id, t.receiver, "0"))

        def arrived() -> list[str]:
            ids = [
                str(m["Message-ID"]).strip("<>").split("@")[0]
                for _, m in list(notify.smtp.messages)
            ]
            ids += [
                r.headers.get("idempotency-key", "")
                for r in list(notify.http.received)
                if r.accepted
            ]
            return ids

        wait_until(
            lambda: expected <= set(arrived()),
            240,
            f"{len(expected)} first notifications at the sinks",
        )
        assert any(not r.accepted for r in notify.http.received), "the webhook never failed"
        ids = arrived()
        duplicates = len(ids) - len(set(ids))
        # Only a notify kill can repeat a delivery: one caught between the channel's answer and
        # the sent-log write, and it repeats with the same id for the receiver to drop. At most
        # every delivery in flight at each kill (ours, or a stalled notify's own exit).
        bound = (notify_kills + notify.service.restarts) * MAX_IN_FLIGHT * widest
        supervisor.close()
        restarts = {s.log_path.name: s.restarts for s in (ingest, rules, second, notify.service)}
        (log_dir / "chaos-summary.txt").write_text(
            f"duplicates={duplicates} bound={bound} restarts_by_supervisor={restarts}\n"
        )
        assert duplicates <= bound, f"{duplicates} notifications arrived twice (bound {bound})"
        # Outages are quiet: the Kafka clients' connection errors, one line per cause per 30 s.
        for service in (ingest, rules, second, notify.service):
            causes = Counter(
                json.loads(line)["msg"].split(" (and ")[0]
                for line in service.log_text().splitlines()
                if '"logger": "kafka' in line or '"logger": "aiokafka' in line
            )
            assert all(n <= 12 for n in causes.values()), causes.most_common(2)
    finally:
        supervisor.close()
        if notify is not None:
            notify.stop()
        second.stop()
        rules.stop()
        ingest.stop()
        broker.destroy()
