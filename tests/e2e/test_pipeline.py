"""The whole pipeline on the real broker: HTTP → ingest → Kafka → rules → Kafka → notify →
real SMTP and webhook sinks, with acknowledgements over HTTP."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.common import topics
from tests.integration.notify_support import (
    API_TOKEN,
    CASEWORKER,
    DIRECTOR,
    SUPERVISOR,
    NotifyStack,
    start_stack,
    text_of,
)
from tests.integration.services import AUTH
from tests.support import Service, make_event, missing_opened, read_topic, registered, wait_until


def post(ingest: Service, *events: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    for e in events:
        sent = AUTH | (headers or {})
        r = httpx.post(f"{ingest.url}/v1/events", json=e, headers=sent, timeout=30)
        assert r.status_code == 202, r.text


def escalations(bootstrap: str, child: str) -> list[dict[str, Any]]:
    return [
        r.json()
        for r in read_topic(bootstrap, topics.ESCALATIONS)
        if r.json().get("child_id") == child
    ]


def mails(notify: NotifyStack, address: str, child: str, subject_part: str = "") -> list[Any]:
    return [
        m for m in notify.mails_to(address) if child in text_of(m) and subject_part in m["Subject"]
    ]


def test_missing_child_in_missouri_reaches_everyone_with_the_2h_deadline(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    child = f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    post(
        ingest,
        registered(child, now),
        missing_opened(
            child_id=child, at=now, description={"name": "Maya Lopez", "clothing": "green jacket"}
        ),
    )
    wait_until(
        lambda: len(mails(notify, CASEWORKER, child, "NCMEC")) == 1, 60, "caseworker mail for NCMEC"
    )
    [ncmec] = [e for e in escalations(bootstrap, child) if e["rule_id"] == "federal.report-ncmec"]
    assert datetime.fromisoformat(ncmec["due_at"]) == now + timedelta(hours=2)
    accepted = datetime.fromisoformat(ncmec["event_accepted_at"])
    assert accepted <= datetime.fromisoformat(ncmec["created_at"])
    wait_until(
        lambda: any(child in r.body.decode() for r in notify.http.on("/hooks/le")),
        60,
        "law enforcement webhook",
    )
    le = next(r for r in notify.http.on("/hooks/le") if child in r.body.decode())
    assert le.signature_ok is True
    assert le.json()["data"]["subject"]["clothing"] == "green jacket"
    wait_until(
        lambda: any(b"Maya" in r.body for r in notify.http.on("/hooks/shelters")),
        60,
        "shelter webhook",
    )
    shelter = next(r for r in notify.http.on("/hooks/shelters") if b"Maya" in r.body)
    assert (
        b"Lopez" not in shelter.body
        and b"foster" not in shelter.body.lower()
        and child.encode() not in shelter.body
    )
    metrics = httpx.get(f"{notify.service.url}/metrics").text
    count = re.search(
        r'^carealert_notify_end_to_end_latency_seconds_count\{channel="webhook"\} (\S+)$',
        metrics,
        re.M,
    )
    assert count is not None and float(count.group(1)) >= 2


def test_reports_in_time_resolve_the_duties_and_nothing_goes_overdue(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    child = f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    post(ingest, registered(child, now), missing_opened(child_id=child, at=now))
    wait_until(lambda: len(mails(notify, CASEWORKER, child)) >= 2, 60, "first mails")
    post(
        ingest,
        make_event(
            "missing.law_enforcement_reported",
            {
                "episode_id": "E-1",
                "le_agency": "KCPD",
                "report_number": "R-1",
                "ncic_entry_confirmed": True,
            },
            child_id=child,
        ),
        make_event(
            "missing.ncmec_reported",
            {"episode_id": "E-1", "ncmec_case_number": "N-1"},
            child_id=child,
        ),
    )
    wait_until(
        lambda: len(mails(notify, CASEWORKER, child, "RESOLVED")) == 2, 60, "two resolution notices"
    )
    statuses = {(e["rule_id"], e["status"]) for e in escalations(bootstrap, child)}
    assert ("federal.report-law-enforcement", "resolved") in statuses
    assert ("federal.report-ncmec", "resolved") in statuses
    assert not [s for s in statuses if s[0].endswith(".overdue")]


def test_late_reports_go_overdue_to_the_supervisor(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    child = f"C-{uuid.uuid4().hex[:8]}"
    learned = datetime.now(UTC) - timedelta(hours=2) + timedelta(seconds=5)  # MO: due in 5 s
    post(ingest, registered(child, learned), missing_opened(child_id=child, at=learned))
    wait_until(
        lambda: any(
            e["rule_id"] == "federal.report-ncmec.overdue" for e in escalations(bootstrap, child)
        ),
        60,
        "overdue escalation",
    )
    wait_until(
        lambda: len(mails(notify, SUPERVISOR, child, "overdue")) >= 1,
        60,
        "overdue mail to the supervisor",
    )
    overdue = next(
        e for e in escalations(bootstrap, child) if e["rule_id"] == "federal.report-ncmec.overdue"
    )
    assert overdue["severity"] == "critical"
    assert {"caseworker", "supervisor", "director"} <= set(overdue["recipients"])


def test_return_then_clear_concern_starts_the_trafficking_report(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    child = f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    post(ingest, registered(child, now), missing_opened(child_id=child, at=now))
    post(
        ingest,
        make_event(
            "missing.located", {"episode_id": "E-1", "located_at": now.isoformat()}, child_id=child
        ),
    )
    wait_until(
        lambda: len(mails(notify, CASEWORKER, child, "Screen the returned child")) == 1,
        60,
        "screening due",
    )
    post(
        ingest,
        make_event(
            "screening.completed",
            {"episode_id": "E-1", "tool": "cse_it", "result": "clear_concern"},
            child_id=child,
        ),
    )
    wait_until(
        lambda: len(mails(notify, CASEWORKER, child, "trafficking")) >= 1,
        60,
        "trafficking report due",
    )
    [report] = [
        e for e in escalations(bootstrap, child) if e["rule_id"] == "federal.trafficking-report"
    ]
    assert report["severity"] == "critical"
    assert datetime.fromisoformat(report["due_at"]) - datetime.fromisoformat(
        report["created_at"]
    ) <= timedelta(hours=24, seconds=5)
    assert any(
        e["rule_id"] == "federal.return-screening" and e["status"] == "resolved"
        for e in escalations(bootstrap, child)
    )


def test_acknowledgement_stops_re_escalation(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    acked_child, ignored_child = f"C-{uuid.uuid4().hex[:8]}", f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    # Ohio: no overlay, 24 h deadlines, so only the 7 s ack timeout can move things up.
    for child in (acked_child, ignored_child):
        post(
            ingest,
            make_event(
                "child.registered",
                {
                    "date_of_birth": "2011-05-01",
                    "sex": "male",
                    "caseworker_id": "W-1",
                    "supervisor_id": "S-1",
                },
                child_id=child,
                state="OH",
            ),
        )
        event = missing_opened(child_id=child, at=now)
        event["jurisdiction"] = {"state": "OH"}
        post(ingest, event)
    wait_until(lambda: len(mails(notify, CASEWORKER, acked_child, "NCMEC")) == 1, 60, "mail to ack")
    mail = mails(notify, CASEWORKER, acked_child, "NCMEC")[0]
    link = (
        next(ln for ln in text_of(mail).splitlines() if ln.startswith("Acknowledge:"))
        .split(":", 1)[1]
        .strip()
    )
    assert httpx.post(link).status_code == 202
    escalation_id = link.split("/v1/escalations/")[1].split("/")[0]
    # The duty goes to caseworker and supervisor; unacknowledged, it moves up to the director
    # after the 7 s ack timeout ...
    wait_until(
        lambda: any(
            ignored_child in text_of(m) and "NCMEC" in m["Subject"]
            for m in notify.mails_to(DIRECTOR)
        ),
        60,
        "escalation of the ignored one",
    )
    time.sleep(3)
    # ... the acknowledged one never does.
    assert notify.mails_to(DIRECTOR, escalation_id) == []
    assert len(notify.mails_to(SUPERVISOR, escalation_id)) == 1  # its first notice only


def metric(service: Service, name: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    found = re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found[0]) if found else 0.0


def test_canaries_come_back_through_the_whole_pipeline_and_reach_nobody(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    service = notify.service
    wait_until(
        lambda: metric(service, "carealert_notify_canary_round_trip_seconds") > 0,
        60,
        "a canary back at notify",
    )
    first = metric(service, "carealert_notify_canary_last_delivered_timestamp_seconds")
    wait_until(
        lambda: metric(service, "carealert_notify_canary_last_delivered_timestamp_seconds") > first,
        60,
        "the next canary",
    )
    assert metric(service, 'carealert_notify_canaries_sent_total{outcome="accepted"}') >= 2
    assert metric(service, "carealert_notify_canary_interval_seconds") == 2
    # Counted nowhere: ingest's accepted counter has no canary in it.
    ingest_text = httpx.get(f"{ingest.url}/metrics", timeout=5).text
    accepted_before = sum(
        float(v)
        for v in re.findall(
            r"^carealert_ingest_events_accepted_total\{[^}]*\} (\S+)$", ingest_text, re.M
        )
    )
    canary_ids = {
        r.json()["escalation_id"]
        for r in read_topic(bootstrap, topics.ESCALATIONS)
        if r.json().get("agency_id") == "carealert-canary"
    }
    assert canary_ids, "canary escalations are on the topic"
    time.sleep(4)  # two more canaries
    ingest_text = httpx.get(f"{ingest.url}/metrics", timeout=5).text
    assert accepted_before == sum(
        float(v)
        for v in re.findall(
            r"^carealert_ingest_events_accepted_total\{[^}]*\} (\S+)$", ingest_text, re.M
        )
    )
    # Reached nobody: no mail, no webhook, no notification record, nothing open.
    assert not [m for _, m in notify.smtp.messages if "canary" in m.as_string()]
    assert not [r for r in notify.http.received if b"canary" in r.body]
    assert not [
        r
        for r in read_topic(bootstrap, topics.NOTIFICATIONS)
        if r.json()["escalation_id"] in canary_ids
    ]
    listed = httpx.get(
        f"{service.url}/v1/escalations?status=open",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=5,
    ).json()
    assert all(e["agency_id"] != "carealert-canary" for e in listed["escalations"])


def test_the_agency_trace_follows_its_event_to_law_enforcement(
    pipeline: tuple[Service, Service, NotifyStack], bootstrap: str
) -> None:
    ingest, _, notify = pipeline
    child = f"C-{uuid.uuid4().hex[:8]}"
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    now = datetime.now(UTC).replace(microsecond=0)
    post(
        ingest,
        registered(child, now),
        missing_opened(child_id=child, at=now),
        headers={"traceparent": traceparent},
    )
    wait_until(
        lambda: any(child in r.body.decode() for r in notify.http.on("/hooks/le")),
        60,
        "law enforcement webhook",
    )
    le = next(r for r in notify.http.on("/hooks/le") if child in r.body.decode())
    assert le.headers["traceparent"].startswith(f"00-{trace_id}-")
    assert le.headers["traceparent"] != traceparent
    traced = [
        r for r in read_topic(bootstrap, topics.ESCALATIONS) if r.json().get("child_id") == child
    ]
    assert traced and all(
        r.headers["traceparent"].decode().startswith(f"00-{trace_id}-") for r in traced
    )


def night_zone(hour: int = 2) -> str:
    """A fixed-offset zone whose local clock reads about `hour` o'clock now."""
    offset = (hour - datetime.now(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-3 is UTC+3


def test_a_missing_child_at_night_reaches_whoever_the_schedule_puts_on_call(
    pipeline: tuple[Service, Service, NotifyStack],
    bootstrap: str,
    log_dir: Path,
    tmp_path: Path,
) -> None:
    """C-2 covers the day and C-1 the night, in a zone where it is 2 a.m. now: the broadcast
    about a missing child reaches C-1's phone, and never C-2's."""
    ingest, _, _ = pipeline
    schedule = f"""
schedules:
  - name: on-call
    time_zone: {night_zone()}
    layers:
      - name: days
        members: [C-2]
        rotation: 7d
        starts: "2026-01-05T06:00"
        restrictions: [{{start: "06:00", end: "22:00"}}]
      - name: nights
        members: [C-1]
        rotation: 7d
        starts: "2026-01-05T22:00"
        restrictions: [{{start: "22:00", end: "06:00"}}]
"""
    notify = start_stack(bootstrap, log_dir, tmp_path, demo_agency=schedule)
    try:
        child = f"C-{uuid.uuid4().hex[:8]}"
        post(ingest, registered(child, datetime.now(UTC)), missing_opened(child_id=child))

        def pages(number: str) -> list[Any]:
            return [
                r
                for r in notify.http.on("/sms")
                if r.json()["to"] == number and child in r.json()["message"]
            ]

        wait_until(lambda: bool(pages("+15555550199")), 60, "the night on-call person's SMS")
        assert pages("+15555550198") == []
        delivered = [
            r.json()
            for r in read_topic(bootstrap, topics.NOTIFICATIONS)
            if r.json().get("receiver") == "on-call" and r.json().get("status") == "delivered"
        ]
        assert any(d["person_id"] == "C-1" for d in delivered)
    finally:
        notify.stop()
