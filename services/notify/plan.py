"""Pure decisions of the notifier: ids, addresses, ack tokens, backoff and the reminder and
escalation schedule. No I/O, no clock reads: everything is passed in."""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from services.common.escalations import Escalation
from services.common.ids import stable_id
from services.common.ladder import climbed
from services.notify.routing import ReceiverSpec, Routing, StaffContact, Target


def notification_id(escalation_id: str, receiver: str, step: str) -> str:
    """Deterministic: the same (escalation, receiver, step) always has the same id."""
    return stable_id(escalation_id, receiver, step)


def ack_token(secret: str, escalation_id: str, receiver: str, expires: int) -> str:
    """`<expiry, unix seconds>.<HMAC>`: binds the escalation, the receiver and the expiry."""
    message = f"{escalation_id}:{receiver}:{expires}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]
    return f"{expires}.{mac}"


def check_ack_token(
    secret: str, escalation_id: str, receiver: str, token: str, now: datetime
) -> str | None:
    """None if the token is good now; otherwise "invalid" or "expired". Never raises, whatever
    the token holds (non-ASCII, no dot, not a number)."""
    if not token.isascii() or not receiver.isprintable():
        return "invalid"
    expires_text, dot, _ = token.partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return "invalid"
    expected = ack_token(secret, escalation_id, receiver, int(expires_text))
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return "invalid"
    if now.timestamp() > int(expires_text):
        return "expired"
    return None


def ack_url(base: str, secret: str, escalation_id: str, receiver: str, expires: datetime) -> str:
    token = ack_token(secret, escalation_id, receiver, int(expires.timestamp()))
    path = f"/v1/escalations/{escalation_id}/ack"
    return f"{base.rstrip('/')}{path}?receiver={quote(receiver)}&token={token}"


class NoContact(Exception):
    """The receiver has no address for this escalation (e.g. unknown caseworker, no fallback)."""


def resolve_address(
    spec: ReceiverSpec, esc: Escalation, staff: dict[str, StaffContact] | Any
) -> tuple[str, str, Any]:
    """(channel, address, channel options) for a receiver and an escalation."""

    def staff_field(role: str, attr: str) -> str | None:
        staff_id = esc.caseworker_id if role == "caseworker" else esc.supervisor_id
        contact = staff.get(staff_id) if staff_id else None
        value = getattr(contact, attr, None) if contact else None
        return value if isinstance(value, str) else None

    if spec.email is not None:
        e = spec.email
        address = e.to or (staff_field(e.to_staff, "email") if e.to_staff else None) or e.fallback
        if not address:
            raise NoContact("no_contact")
        return "email", address, e
    if spec.webhook is not None:
        return "webhook", spec.webhook.url, spec.webhook
    if spec.sms is not None:
        s = spec.sms
        address = s.to or (staff_field(s.to_staff, "sms") if s.to_staff else None) or s.fallback
        if not address:
            raise NoContact("no_contact")
        return "sms", address, s
    raise NoContact("no_channel")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.2  # ± fraction

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        raw = min(self.max_s, self.base_s * self.factor ** (attempt - 1))
        return raw * (1 + rng.uniform(-self.jitter, self.jitter))


def widen_classes(classes: tuple[str, ...], levels: int) -> tuple[str, ...]:
    """Recipient classes after `levels` escalation steps (services.common.ladder)."""
    return climbed(classes, levels)


@dataclass
class OpenEntry:
    """What notify remembers about a firing escalation until it is resolved."""

    escalation: Escalation
    partition: int
    first_sent_at: datetime
    acked_by: str | None = None
    targets: list[tuple[str, str]] = field(default_factory=list)  # (receiver, recipient class)

    def to_json(self) -> dict[str, Any]:
        return {
            "escalation": self.escalation.model_dump(mode="json", exclude_none=True),
            "partition": self.partition,
            "first_sent_at": self.first_sent_at.isoformat(),
            "targets": self.targets,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenEntry:
        return cls(
            escalation=Escalation.model_validate(data["escalation"]),
            partition=int(data["partition"]),
            first_sent_at=datetime.fromisoformat(data["first_sent_at"]),
            targets=[(r, c) for r, c in data.get("targets", [])],
        )


def due_steps(entry: OpenEntry, routing: Routing, now: datetime) -> list[tuple[str, Target]]:
    """Reminders and escalations owed for an unacknowledged escalation at `now`.

    Reminder k (step `r<k>`) to each original target at first_sent + k × its route's
    repeat_interval, at most `max_reminders`. Escalation level l (step `e<l>`) to the receivers
    the widened recipient classes add, at first_sent + l × the shortest ack_timeout among the
    original targets. Steps already done are filtered by the caller through the sent-log.
    """
    if entry.acked_by is not None or entry.escalation.status != "firing":
        return []
    age = now - entry.first_sent_at
    out: list[tuple[str, Target]] = []
    original = routing.route(entry.escalation)
    for target in original:
        interval = target.route.repeat_interval
        k = min(int(age / interval), routing.defaults.max_reminders)
        for step in range(1, k + 1):
            out.append((f"r{step}", target))
    if original:
        ack_timeout = min(t.route.ack_timeout for t in original)
        levels = int(age / ack_timeout) if ack_timeout > timedelta(0) else 0
        known = {t.receiver for t in original}
        for level in range(1, levels + 1):
            classes = widen_classes(entry.escalation.recipients, level)
            for target in routing.route(entry.escalation, classes):
                if target.receiver not in known:
                    known.add(target.receiver)
                    out.append((f"e{level}", target))
    return out
