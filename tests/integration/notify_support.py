"""A notify deployment for tests: real SMTP and HTTP sinks on loopback, a routing file that
points at them with short intervals, and `carealert notify` in a subprocess."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common import topics
from services.common.escalations import Escalation
from services.localdev.sinks import HttpSink, SmtpSink
from tests.support import Service, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "test-webhook-54DYnPOdzVzryQJlHbVOxKeDshFyKizyBQdTnR9G"
ACK_SECRET = "test-ack-8JM5jlWtuOtWLfMIQYXuMYHDuQbN-jUzuy1ptgiX"
# Operator API tokens (CAREALERT_API_TOKENS_FILE): one agency and role each.
OPERATOR_TOKEN = "test-operator-Oo9jfrlD49dSQ3x1JSSCVYsDJg2DBj-WwRumR86n"
AUDITOR_TOKEN = "test-auditor-5b1pQ0cT3kXy2wVvL8nMz7Rr4sUa6HjKdEfGiJ"
OTHER_OPERATOR_TOKEN = "test-other-operator-Zq9Wx8Ec7Rv6Tb5Yn4Um3Il2Ok1Pj0Hg"
NO_PERSON_TOKEN = "test-operator-no-person-Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8Ii9Jj0"
LE_RECEIVER_TOKEN = "test-receiver-le-Kk1Ll2Mm3Nn4Oo5Pp6Qq7Rr8Ss9Tt0UuVv"
API_TOKEN = OPERATOR_TOKEN

ROUTING = """\
version: 1
defaults: {{repeat_interval: {repeat}, ack_timeout: {ack}, send_resolved: true, max_reminders: 2}}
operator_receiver: operators
receivers:
  - name: law-enforcement
    shared: true
    webhook: {{url: "http://127.0.0.1:{http}/hooks/le", secret_env: CAREALERT_WEBHOOK_SECRET, timeout_s: 2}}
  - name: shelter-network
    shared: true
    webhook: {{url: "http://127.0.0.1:{http}/hooks/shelters", secret_env: CAREALERT_WEBHOOK_SECRET, timeout_s: 2}}
  - name: operators
    shared: true
    email: {{to: operators@carealert.example}}
route:
  receiver: caseworker
  routes:
    - match: {{recipient_class: law_enforcement}}
      receiver: law-enforcement
    - match: {{recipient_class: shelter_network}}
      receiver: shelter-network
    - match: {{recipient_class: supervisor}}
      receiver: supervisor
    - match: {{recipient_class: director}}
      receiver: director
    - match: {{recipient_class: on_call}}
      receiver: on-call
"""

AGENCY = """\
version: 1
agency_id: {agency}
name: {name}
time_zone: {zone}
contact_24_7: "{phone}"
receivers:
  - name: caseworker
    email: {{to_staff: caseworker, fallback: intake@{agency}.example}}
  - name: supervisor
    email: {{to_staff: supervisor, fallback: supervisors@{agency}.example}}
  - name: director
    email: {{to: director@{agency}.example}}
  - name: on-call
    sms: {{gateway_url: "http://127.0.0.1:{http}/sms", to_role: on_call}}
"""

# The people registry: the same staff ids in two agencies, different people.
PEOPLE = """\
version: 1
people:
  - {id: W-1, agency_id: demo-agency, name: Alex Rivera, email: alex@agency.example, roles: [caseworker]}
  - {id: S-1, agency_id: demo-agency, name: Jordan Price, email: jordan@agency.example, roles: [supervisor]}
  - {id: C-1, agency_id: demo-agency, name: Casey Brooks, sms: "+15555550199", roles: [on_call]}
  - {id: C-2, agency_id: demo-agency, name: Quinn Harper, sms: "+15555550198", roles: [on_call]}
  - {id: O-1, agency_id: demo-agency, name: Riley Quinn, email: riley@agency.example, roles: [operator]}
  - {id: A-1, agency_id: demo-agency, name: Taylor Grant, roles: [auditor]}
  - {id: W-1, agency_id: other-agency, name: Dana Ortiz, email: dana@other-agency.example, roles: [caseworker]}
  - {id: S-1, agency_id: other-agency, name: Robin Castillo, email: robin@other-agency.example, roles: [supervisor]}
  - {id: C-1, agency_id: other-agency, name: Jamie Flores, sms: "+15555550299", roles: [on_call]}
  - {id: O-2, agency_id: other-agency, name: Drew Salazar, roles: [operator]}
"""


def tokens_file(path: Path) -> Path:
    from services.common.secrets import secret_hash

    entries = [
        (OPERATOR_TOKEN, "demo-agency", "operator", "person_id: O-1"),
        (AUDITOR_TOKEN, "demo-agency", "auditor", "person_id: A-1"),
        (OTHER_OPERATOR_TOKEN, "other-agency", "operator", "person_id: O-2"),
        (NO_PERSON_TOKEN, "demo-agency", "operator", ""),
        (LE_RECEIVER_TOKEN, "*", "receiver", "receiver: law-enforcement"),
    ]
    lines = ["version: 1", "tokens:"]
    for token, agency, role, extra in entries:
        lines += [
            f"  - sha256: {secret_hash(token)}",
            f'    agency_id: "{agency}"',
            f"    role: {role}",
            f"    label: test {role}",
        ] + ([f"    {extra}"] if extra else [])
    path.write_text("\n".join(lines) + "\n")
    return path


def write_policy(
    policy: Path, http_port: int, repeat: str, ack: str, demo_agency: str = ""
) -> None:
    """routing.yaml, and the two agencies' files, pointing at the test's sinks; `demo_agency`:
    YAML appended to demo-agency's file (e.g. a schedule, a fallback receiver)."""
    (policy / "routing.yaml").write_text(ROUTING.format(repeat=repeat, ack=ack, http=http_port))
    (policy / "agencies").mkdir(exist_ok=True)
    for agency, name, zone, phone in (
        ("demo-agency", "Demo County Children's Division", "America/Chicago", "+1-555-0100"),
        ("other-agency", "Other County Family Services", "America/Denver", "+1-555-0200"),
    ):
        text = AGENCY.format(agency=agency, name=name, zone=zone, phone=phone, http=http_port)
        if agency == "demo-agency" and demo_agency:
            # A schedule, when given, decides who the on-call receiver reaches.
            if "schedules:" in demo_agency:
                text = text.replace("to_role: on_call", "to_schedule: on-call")
            text += demo_agency
        (policy / "agencies" / f"{agency}.yaml").write_text(text)


# demo-agency's inboxes: the caseworker (W-1), the supervisor (S-1) and the director; and the
# other agency's caseworker with the same staff id.
CASEWORKER = "alex@agency.example"
SUPERVISOR = "jordan@agency.example"
DIRECTOR = "director@demo-agency.example"
OTHER_CASEWORKER = "dana@other-agency.example"


@dataclass
class NotifyStack:
    service: Service
    smtp: SmtpSink
    http: HttpSink
    policy_dir: Path
    group_id: str

    def mails_to(self, address: str, escalation_id: str | None = None) -> list[Any]:
        with self.smtp.lock:
            return [
                m
                for rcpt, m in self.smtp.messages
                if address in rcpt
                and (escalation_id is None or m["X-Carealert-Escalation"] == escalation_id)
            ]

    def stop(self) -> None:
        self.service.stop()
        self.http.stop()
        self.smtp.stop()


def skip_existing_records(bootstrap: str, group_id: str, topic: str = topics.ESCALATIONS) -> None:
    """Commit the group's offsets at the current end of `topic` (care.escalations.v1), so a
    test's worker only sees the records the test publishes."""
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap], group_id=group_id, enable_auto_commit=False
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        end = consumer.end_offsets(tps)
        from kafka.structs import OffsetAndMetadata

        consumer.commit({tp: OffsetAndMetadata(end[tp], "", -1) for tp in tps})
    finally:
        consumer.close()


def start_stack(
    bootstrap: str,
    log_dir: Path,
    tmp: Path,
    *,
    repeat: str = "1h",
    ack: str = "1h",
    fault_file: Path | None = None,
    templates: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
    fresh_broker: bool = False,
    mail_folder: Path | None = None,
    demo_agency: str = "",
    **extra_env: str,
) -> NotifyStack:
    """`templates`: file name → text, replacing shipped templates (to break one on purpose);
    `mail_folder`: where the SMTP sink saves each mail as a page (as `make run`'s does);
    `demo_agency`: YAML added to demo-agency's file."""
    smtp = SmtpSink(free_port(), mail_folder)
    http = HttpSink(free_port(), secret=WEBHOOK_SECRET)
    smtp.start()
    http.start()
    policy = tmp / f"policy-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "rules" / "templates", policy / "templates")
    for name, text in (templates or {}).items():
        (policy / "templates" / name).write_text(text)
    write_policy(policy, http.port, repeat, ack, demo_agency)
    (tmp / "people.yaml").write_text(PEOPLE)
    group = f"notify-it-{uuid.uuid4().hex[:8]}"
    from services.common.kafka import KafkaClient, ensure_topics

    if not fresh_broker:  # (a fresh broker has nothing to skip, and may need credentials)
        ensure_topics(KafkaClient.plaintext([bootstrap]), partitions=6, replication=1)
        skip_existing_records(bootstrap, group)
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CAREALERT_NOTIFY_PORT": str(port),
        "CAREALERT_NOTIFY_PUBLIC_URL": f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        "CAREALERT_POLICY_DIR": str(policy),
        "CAREALERT_NOTIFY_GROUP_ID": group,
        "CAREALERT_ACK_SECRET": ACK_SECRET,
        "CAREALERT_USERS_FILE": str(tmp / "people.yaml"),
        "CAREALERT_API_TOKENS_FILE": str(tokens_file(tmp / "tokens.yaml")),
        "CAREALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CAREALERT_SMTP_PORT": str(smtp.port),
        "CAREALERT_RETRY_BASE_S": "0.2",
        "CAREALERT_RETRY_MAX_ATTEMPTS": "4",
        "CAREALERT_NOTIFY_TICK_S": "0.3",
    }
    if fault_file is not None:
        env["CAREALERT_NOTIFY_FAULT_FILE"] = str(fault_file)
    if tls is not None:
        env["CAREALERT_TLS_CERTFILE"], env["CAREALERT_TLS_KEYFILE"] = str(tls[0]), str(tls[1])
    env.update(extra_env)
    service = Service(["notify"], env, port, log_dir, tls_ca=tls[0] if tls else None)
    service.start()
    return NotifyStack(service, smtp, http, policy, group)


def publish(producer: KafkaProducer, esc: Escalation) -> None:
    producer.send(topics.ESCALATIONS, key=esc.key.encode(), value=esc.to_bytes()).get(timeout=10)


def text_of(mail: Any) -> str:
    """The plain-text body of a mail (its text/plain part when it has an HTML one too)."""
    return str(mail.get_body(("plain",)).get_content())


def ack_link(mail: object) -> str:
    line = next(ln for ln in text_of(mail).splitlines() if ln.startswith("Acknowledge:"))
    return str(line.split(":", 1)[1].strip())


def wait_until_mail(stack: NotifyStack, escalation_id: str) -> Any:
    """The first mail to the caseworker about `escalation_id`, waiting up to 30 s for it."""
    wait_until(lambda: bool(stack.mails_to(CASEWORKER, escalation_id)), 30, "mail")
    return stack.mails_to(CASEWORKER, escalation_id)[0]
