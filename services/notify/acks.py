"""Ack links: a token binding an escalation, a receiver, the person written to (when the
message went to a person) and an expiry (HMAC-SHA256), so that only the one a message went to can
acknowledge it, as themselves, and only for a while. Pure."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote


@dataclass(frozen=True)
class AckSubject:
    """Who an ack link is for: a receiver of an escalation and, if it is a person, who."""

    escalation_id: str
    receiver: str
    person_id: str | None = None


def ack_token(secret: str, subject: AckSubject, expires: int) -> str:
    """`<expiry, unix seconds>.<HMAC>`: binds the escalation, the receiver, the person and the
    expiry. A link to no person binds what links always have (escalation, receiver, expiry)."""
    parts = [subject.escalation_id, subject.receiver]
    if subject.person_id is not None:
        parts.append(f"person={subject.person_id}")
    message = ":".join([*parts, str(expires)]).encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]
    return f"{expires}.{mac}"


def check_ack_token(secret: str, subject: AckSubject, token: str, now: datetime) -> str | None:
    """None if the token is good now; otherwise "invalid" or "expired". Never raises, whatever
    the token holds (non-ASCII, no dot, not a number)."""
    names = [subject.receiver, subject.person_id or ""]
    if not token.isascii() or not all(n.isprintable() for n in names):
        return "invalid"
    expires_text, dot, _ = token.partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return "invalid"
    expected = ack_token(secret, subject, int(expires_text))
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return "invalid"
    if now.timestamp() > int(expires_text):
        return "expired"
    return None


def ack_url(base: str, secret: str, subject: AckSubject, expires: datetime) -> str:
    token = ack_token(secret, subject, int(expires.timestamp()))
    path = f"/v1/escalations/{subject.escalation_id}/ack"
    person = f"&person={quote(subject.person_id)}" if subject.person_id is not None else ""
    return f"{base.rstrip('/')}{path}?receiver={quote(subject.receiver)}{person}&token={token}"
