"""Notify on the real broker with a real SMTP server (aiosmtpd) and a real HTTP webhook server."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common import topics, tracing
from services.common.dlq import TOMBSTONE_REASON
from services.notify.acks import AckSubject, ack_token
from tests.integration.notify_support import (
    ACK_SECRET,
    API_TOKEN,
    NotifyStack,
    ack_link,
    publish,
    start_stack,
    text_of,
    wait_until_mail,
)
from tests.support import (
    CAREALERT,
    Record,
    make_escalation,
    read_topic,
    wait_for_records,
    wait_until,
)


def records_for(bootstrap: str, escalation_id: str) -> list[dict[str, object]]:
    return [
        r.json()
        for r in read_topic(bootstrap, topics.NOTIFICATIONS)
        if r.key == escalation_id.encode()
    ]


def test_escalation_is_mailed_and_webhooked_with_signature(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    esc = make_escalation(
        recipients=["caseworker", "law_enforcement", "shelter_network"],
        rule_id="alert.missing-child",
        severity="critical",
    )
    publish(producer, esc)
    wait_until(
        lambda: len(stack.mails_to("alex@agency.example", esc.escalation_id)) == 1,
        30,
        "caseworker mail",
    )
    wait_until(
        lambda: any(
            r.json()["escalation_id"] == esc.escalation_id for r in stack.http.on("/hooks/shelters")
        ),
        30,
        "shelter webhook",
    )
    [mail] = stack.mails_to("alex@agency.example", esc.escalation_id)
    assert "[critical]" in mail["Subject"]
    body = text_of(mail)
    assert "Jane Doe" in body and esc.escalation_id in body
    assert mail["Message-ID"].endswith("@carealert>")

    [le] = [r for r in stack.http.on("/hooks/le") if r.json()["escalation_id"] == esc.escalation_id]
    assert le.signature_ok is True
    assert le.headers["idempotency-key"] == le.json()["notification_id"]
    assert le.json()["data"]["subject"]["clothing"] == "red hoodie"
    [shelter] = [
        r
        for r in stack.http.on("/hooks/shelters")
        if r.json()["escalation_id"] == esc.escalation_id
    ]
    assert shelter.signature_ok is True
    assert (
        b"medical" not in shelter.body
        and b"671(a)" not in shelter.body  # the legal basis (a bare 671 can occur in hex ids)
        and b"Doe" not in shelter.body
    )

    wait_until(
        lambda: (
            len(
                [r for r in records_for(bootstrap, esc.escalation_id) if r["status"] == "delivered"]
            )
            == 3
        ),
        30,
        "records",
    )
    delivered = [r for r in records_for(bootstrap, esc.escalation_id) if r["status"] == "delivered"]
    assert {(r["receiver"], r["channel"]) for r in delivered} == {
        ("caseworker", "email"),
        ("law-enforcement", "webhook"),
        ("shelter-network", "webhook"),
    }


def test_webhook_500_twice_then_200_delivers_once_in_three_attempts(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    esc = make_escalation(recipients=["law_enforcement"])
    stack.http.responses.extend([500, 503])
    publish(producer, esc)
    wait_until(
        lambda: any(r["status"] == "delivered" for r in records_for(bootstrap, esc.escalation_id)),
        30,
        "delivery",
    )
    attempts = [
        (r["status"], r["attempt"], r.get("reason"))
        for r in records_for(bootstrap, esc.escalation_id)
    ]
    assert attempts == [
        ("retrying", 1, "http_5xx"),
        ("retrying", 2, "http_5xx"),
        ("delivered", 3, None),
    ]
    got = [r for r in stack.http.on("/hooks/le") if r.body and esc.escalation_id.encode() in r.body]
    assert len(got) == 3  # two refused, one accepted
    assert len({r.headers["idempotency-key"] for r in got}) == 1


def test_permanent_failure_is_not_retried(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    esc = make_escalation(recipients=["law_enforcement"])
    stack.http.responses.extend([410])
    publish(producer, esc)
    wait_until(
        lambda: any(r["status"] == "failed" for r in records_for(bootstrap, esc.escalation_id)),
        30,
        "failure",
    )
    assert [(r["status"], r["reason"]) for r in records_for(bootstrap, esc.escalation_id)] == [
        ("failed", "http_4xx")
    ]


def test_retry_budget_ends_in_dead_letter(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    esc = make_escalation(recipients=["law_enforcement"])
    stack.http.responses.extend([500, 500, 500, 500])
    publish(producer, esc)
    wait_until(
        lambda: any(
            r["status"] == "dead_lettered" for r in records_for(bootstrap, esc.escalation_id)
        ),
        30,
        "dead letter",
    )
    assert [r["status"] for r in records_for(bootstrap, esc.escalation_id)] == [
        "retrying",
        "retrying",
        "retrying",
        "dead_lettered",
    ]


def test_duplicate_escalation_record_is_delivered_once(
    stack: NotifyStack, producer: KafkaProducer
) -> None:
    esc = make_escalation()
    publish(producer, esc)
    publish(producer, esc)
    wait_until(
        lambda: len(stack.mails_to("alex@agency.example", esc.escalation_id)) >= 1, 30, "mail"
    )
    time.sleep(2)
    assert len(stack.mails_to("alex@agency.example", esc.escalation_id)) == 1


def test_resolved_sends_notice_and_leaves_the_open_list(
    stack: NotifyStack, producer: KafkaProducer
) -> None:
    esc = make_escalation()
    publish(producer, esc)
    wait_until(
        lambda: len(stack.mails_to("alex@agency.example", esc.escalation_id)) == 1, 30, "mail"
    )
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    listed = httpx.get(f"{stack.service.url}/v1/escalations?status=open", headers=headers).json()
    assert esc.escalation_id in {e["escalation_id"] for e in listed["escalations"]}
    assert httpx.get(f"{stack.service.url}/v1/escalations?status=open").status_code == 401
    publish(producer, esc.model_copy(update={"status": "resolved"}))
    wait_until(
        lambda: len(stack.mails_to("alex@agency.example", esc.escalation_id)) == 2,
        30,
        "resolution notice",
    )
    assert stack.mails_to("alex@agency.example", esc.escalation_id)[1]["Subject"].startswith(
        "RESOLVED"
    )
    wait_until(
        lambda: (
            esc.escalation_id
            not in {
                e["escalation_id"]
                for e in httpx.get(f"{stack.service.url}/v1/escalations", headers=headers).json()[
                    "escalations"
                ]
            }
        ),
        10,
        "closed",
    )


def test_bad_ack_token_is_refused(stack: NotifyStack, producer: KafkaProducer) -> None:
    esc = make_escalation()
    r = httpx.post(
        f"{stack.service.url}/v1/escalations/{esc.escalation_id}/ack",
        json={"receiver": "caseworker", "token": "0" * 32},
    )
    assert r.status_code == 403


def test_reminders_escalation_ack_and_resolve(
    bootstrap: str, log_dir: Path, tmp_path: Path, producer: KafkaProducer
) -> None:
    """Short intervals: reminders every 4 s, escalation after 7 s. The acknowledged escalation
    stops; the unacknowledged one is reminded and goes up to the supervisor; the resolved one
    stops too. Acks survive a restart."""
    s = start_stack(bootstrap, log_dir, tmp_path, repeat="4s", ack="7s")
    try:
        acked, ignored, resolved = make_escalation(), make_escalation(), make_escalation()
        for esc in (acked, ignored, resolved):
            publish(producer, esc)
        wait_until(
            lambda: all(
                s.mails_to("alex@agency.example", e.escalation_id)
                for e in (acked, ignored, resolved)
            ),
            30,
            "first mails",
        )

        link = ack_link(s.mails_to("alex@agency.example", acked.escalation_id)[0])
        query = parse_qs(urlparse(link).query)
        assert query["receiver"] == ["caseworker"]
        page = httpx.get(link)
        assert page.status_code == 200 and "<form method=post>" in page.text
        r = httpx.post(link)
        assert r.status_code == 202
        assert r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == ["W-1"]
        publish(producer, resolved.model_copy(update={"status": "resolved"}))

        # The ignored one: reminded (r1 at 4 s) and escalated to the supervisor (e1 at 7 s).
        wait_until(
            lambda: len(s.mails_to("jordan@agency.example", ignored.escalation_id)) == 1,
            30,
            "escalation to supervisor",
        )
        wait_until(
            lambda: len(s.mails_to("alex@agency.example", ignored.escalation_id)) >= 2,
            30,
            "reminder",
        )
        time.sleep(3)
        assert len(s.mails_to("alex@agency.example", acked.escalation_id)) == 1
        assert s.mails_to("jordan@agency.example", acked.escalation_id) == []
        assert (
            len(s.mails_to("alex@agency.example", resolved.escalation_id)) == 2
        )  # first + resolved notice
        assert s.mails_to("jordan@agency.example", resolved.escalation_id) == []
        acks = [
            r.json()
            for r in read_topic(bootstrap, topics.ACKS)
            if r.key == acked.escalation_id.encode()
        ]
        assert [a["receiver"] for a in acks] == ["caseworker"]

        # Restart: the ack and the sent-log come back from Kafka; nothing is sent again.
        s.service.stop()
        before = len(s.mails_to("alex@agency.example", acked.escalation_id))
        ignored_before = len(s.mails_to("alex@agency.example", ignored.escalation_id))
        s.service.start()
        time.sleep(3)
        assert len(s.mails_to("alex@agency.example", acked.escalation_id)) == before
        # reminders are capped at 2 by this routing file
        assert len(s.mails_to("alex@agency.example", ignored.escalation_id)) <= 3
        assert len(s.mails_to("alex@agency.example", ignored.escalation_id)) >= ignored_before
    finally:
        s.stop()


def test_crash_after_sending_before_commit_does_not_send_twice(
    bootstrap: str, log_dir: Path, tmp_path: Path, producer: KafkaProducer
) -> None:
    fault = tmp_path / "crash-before-commit"
    fault.touch()
    s = start_stack(bootstrap, log_dir, tmp_path, fault_file=fault)
    try:
        esc = make_escalation(recipients=["caseworker", "law_enforcement"])
        publish(producer, esc)
        proc = s.service.proc
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, 30, "notify to crash before committing")
        assert proc.returncode == 70
        assert not fault.exists()
        assert len(s.mails_to("alex@agency.example", esc.escalation_id)) == 1
        s.service.start()  # consumes the same, uncommitted escalation again
        time.sleep(4)
        assert len(s.mails_to("alex@agency.example", esc.escalation_id)) == 1
        assert len([r for r in s.http.on("/hooks/le") if esc.escalation_id.encode() in r.body]) == 1
    finally:
        s.stop()


def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group)
    try:
        return consumer.committed(tp)  # type: ignore[no-any-return]
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("poison", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"status": "firing"}', "escalation_id: Field required"),
        (None, TOMBSTONE_REASON),
    ],
)
def test_a_poison_escalation_goes_to_the_dlq_and_the_partition_keeps_flowing(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str, poison: bytes | None, reason: str
) -> None:
    good = make_escalation()
    theirs = [("x-origin", b"agency-etl"), ("source-topic", b"theirs")]
    sent = producer.send(
        topics.ESCALATIONS, key=good.key.encode(), value=poison, headers=theirs
    ).get(timeout=10)
    publish(producer, good)
    wait_until(lambda: bool(stack.mails_to("alex@agency.example", good.escalation_id)), 30, "mail")
    [dead] = [
        r
        for r in read_topic(bootstrap, topics.ESCALATIONS_DLQ)
        if r.headers.get("source-offset") == str(sent.offset).encode()
        and r.headers.get("source-partition") == str(sent.partition).encode()
    ]
    assert dead.value == (poison or b"") and dead.key == good.key.encode()
    assert dead.headers["source-topic"] == topics.ESCALATIONS.encode()
    assert dead.headers["error"].decode() == reason
    assert dead.headers["x-origin"] == b"agency-etl"  # the record's own headers travel with it
    assert dead.headers["original-source-topic"] == b"theirs"
    tp = TopicPartition(topics.ESCALATIONS, sent.partition)
    wait_until(
        lambda: (committed(bootstrap, stack.group_id, tp) or 0) > sent.offset + 1,
        30,
        "the commit past the poison record and the good one",
    )
    metrics = httpx.get(f"{stack.service.url}/metrics", timeout=5).text
    assert "carealert_notify_dlq_writes_total" in metrics


def test_a_broken_template_fails_its_receiver_and_spares_the_others(
    bootstrap: str, log_dir: Path, tmp_path: Path, producer: KafkaProducer
) -> None:
    broken = start_stack(
        bootstrap,
        log_dir,
        tmp_path,
        templates={"shelter.txt.j2": "Subject: {{ no_such_field }}\n\nA youth is missing.\n"},
    )
    try:
        esc = make_escalation(recipients=["shelter_network", "caseworker"])
        publish(producer, esc)
        wait_until(
            lambda: bool(broken.mails_to("alex@agency.example", esc.escalation_id)), 30, "mail"
        )

        def shelter_record() -> list[dict[str, object]]:
            return [
                r
                for r in records_for(bootstrap, esc.escalation_id)
                if r["receiver"] == "shelter-network"
            ]

        # (The module's own notify, another consumer group, delivers the same escalation.)
        wait_until(
            lambda: (
                ("failed", "template_error")
                in [(r["status"], r.get("reason")) for r in shelter_record()]
            ),
            30,
            "the shelter's failure record",
        )
        assert broken.http.on("/hooks/shelters") == []
        metrics = httpx.get(f"{broken.service.url}/metrics", timeout=5).text
        assert (
            'carealert_notify_deliveries_total{channel="webhook",reason="template_error",'
            'status="failed"} 1.0' in metrics
        )
    finally:
        broken.stop()


def test_a_fixed_dead_letter_is_replayed_and_delivered(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str, tmp_path: Path
) -> None:
    good = make_escalation()
    broken = good.to_bytes().replace(b'"status":"firing"', b'"status":"burning"')
    sent = producer.send(topics.ESCALATIONS, key=good.key.encode(), value=broken).get(timeout=10)

    def dead() -> list[Record]:
        return [
            r
            for r in read_topic(bootstrap, topics.ESCALATIONS_DLQ)
            if r.headers.get("source-offset") == str(sent.offset).encode()
            and r.headers.get("source-partition") == str(sent.partition).encode()
        ]

    wait_until(lambda: bool(dead()), 30, "the dead letter")
    [record] = dead()
    replay = [
        str(CAREALERT),
        "dlq",
        "replay",
        "--topic",
        topics.ESCALATIONS_DLQ,
        "--partition",
        str(record.partition),
        "--offset",
        str(record.offset),
    ]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    as_it_was = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert as_it_was.returncode == 1
    assert "still not a valid escalation: status:" in as_it_was.stderr
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(good.to_bytes())
    done = subprocess.run(
        [*replay, "--value-file", str(fixed)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"replayed to {topics.ESCALATIONS} partition ")
    wait_until(lambda: bool(stack.mails_to("alex@agency.example", good.escalation_id)), 30, "mail")


INJECTABLE = [
    ("child_id",),
    ("episode_id",),
    ("action",),
    ("basis",),
    ("rule_id",),
    ("caseworker_id",),
    ("subject", "name"),
    ("subject", "clothing"),
    ("subject", "last_seen_location"),
    ("subject", "physical_description"),
]


def test_cr_lf_and_nul_in_any_field_that_reaches_a_message_never_reach_one(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    """Records written straight to care.escalations.v1 (not through ingest or rules)."""
    import json

    sent = []
    for path in INJECTABLE:
        for bad in ("\r\nBcc: evil@attacker.example", "\nX-Injected: 1", "\x00"):
            esc = make_escalation(recipients=["caseworker", "law_enforcement", "shelter_network"])
            body = json.loads(esc.to_bytes())
            target = body
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = f"value{bad}"
            key = esc.key.encode() if path != ("child_id",) else b"demo-agency:x"
            record = producer.send(
                topics.ESCALATIONS, key=key, value=json.dumps(body).encode()
            ).get(timeout=10)
            # A line feed is text in a multi-line field (it stays in a mail's body); else refused.
            if not (path == ("subject", "physical_description") and bad.startswith("\n")):
                sent.append(record)
    marker = make_escalation()
    publish(producer, marker)
    wait_until(
        lambda: bool(stack.mails_to("alex@agency.example", marker.escalation_id)), 30, "mail"
    )

    offsets = {(s.partition, s.offset) for s in sent}
    wait_until(
        lambda: (
            offsets
            <= {
                (int(r.headers["source-partition"]), int(r.headers["source-offset"]))
                for r in read_topic(bootstrap, topics.ESCALATIONS_DLQ)
            }
        ),
        30,
        "every injected record in the DLQ",
    )
    for recipients, message in list(stack.smtp.messages):
        assert "evil@attacker.example" not in str(recipients)
        assert message["Bcc"] is None and message["X-Injected"] is None
    assert not [r for r in stack.http.received if "x-injected" in r.headers]
    assert not [r for r in stack.http.received if b"attacker" in r.body]


def acks_for(bootstrap: str, escalation_id: str) -> list[Record]:
    return [r for r in read_topic(bootstrap, topics.ACKS) if r.key == escalation_id.encode()]


def test_acknowledgements_are_bound_expire_and_count_once(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    url = stack.service.url
    now = int(time.time())
    # Never existed: 404, nothing written.
    ghost = make_escalation()
    good_for_ghost = ack_token(
        ACK_SECRET, AckSubject(ghost.escalation_id, "caseworker"), now + 3600
    )
    r = httpx.post(
        f"{url}/v1/escalations/{ghost.escalation_id}/ack",
        json={"receiver": "caseworker", "token": good_for_ghost},
    )
    assert r.status_code == 404
    assert r.json() == {"detail": "no open escalation with this id"}
    assert acks_for(bootstrap, ghost.escalation_id) == []

    esc = make_escalation()
    publish(producer, esc)
    mail = wait_until_mail(stack, esc.escalation_id)
    link = ack_link(mail)
    # Expired (a token whose HMAC is right but whose time has passed): 403.
    expired = ack_token(ACK_SECRET, AckSubject(esc.escalation_id, "caseworker", "W-1"), now - 10)
    r = httpx.post(
        f"{url}/v1/escalations/{esc.escalation_id}/ack",
        json={"receiver": "caseworker", "person": "W-1", "token": expired},
    )
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    # Bound to the receiver and the person: the caseworker's token works for neither the
    # supervisor nor another person.
    token = parse_qs(urlparse(link).query)["token"][0]
    for receiver, person in (("supervisor", "W-1"), ("caseworker", "S-1"), ("caseworker", None)):
        r = httpx.post(
            f"{url}/v1/escalations/{esc.escalation_id}/ack",
            json={"receiver": receiver, "person": person, "token": token},
        )
        assert r.status_code == 403
    # Non-ASCII token or bearer: refused, never a 500.
    r = httpx.post(
        f"{url}/v1/escalations/{esc.escalation_id}/ack",
        json={"receiver": "caseworker", "token": "é" * 40},
    )
    assert r.status_code == 403
    r = httpx.get(
        f"{url}/v1/escalations?status=open",
        headers={b"Authorization": "Bearer tökén-ünïcödé".encode()},
    )
    assert r.status_code == 401
    # First ack: 202 and one record; the same again: 200 with the first, nothing written.
    first = httpx.post(link)
    assert first.status_code == 202, first.text
    wait_until(lambda: len(acks_for(bootstrap, esc.escalation_id)) == 1, 30, "the ack record")
    again = httpx.post(link)
    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == ["W-1"]
    time.sleep(1)
    assert len(acks_for(bootstrap, esc.escalation_id)) == 1


def test_notifications_carry_the_trace_of_their_escalation(
    stack: NotifyStack, producer: KafkaProducer, bootstrap: str
) -> None:
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    esc = make_escalation(recipients=["caseworker", "law_enforcement"])
    producer.send(
        topics.ESCALATIONS,
        key=esc.key.encode(),
        value=esc.to_bytes(),
        headers=[(tracing.HEADER, parent.encode())],
    ).get(timeout=10)
    wait_until(
        lambda: any(
            r.json()["escalation_id"] == esc.escalation_id for r in stack.http.on("/hooks/le")
        ),
        30,
        "law-enforcement webhook",
    )
    [le] = [r for r in stack.http.on("/hooks/le") if r.json()["escalation_id"] == esc.escalation_id]
    assert le.headers[tracing.HEADER].startswith(f"00-{trace_id}-")
    records = wait_for_records(
        bootstrap,
        topics.NOTIFICATIONS,
        lambda r: (
            r.json().get("escalation_id") == esc.escalation_id and r.json()["status"] == "delivered"
        ),
        2,
    )
    headers = {r.headers[tracing.HEADER].decode() for r in records}
    assert all(h.startswith(f"00-{trace_id}-") and h.endswith("-01") for h in headers)
    assert len(headers) == 2 and parent not in headers
