"""Ack links: a token binding an escalation, a receiver and an expiry (HMAC-SHA256), so that
only the person a message went to can acknowledge it, and only for a while. Pure."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import quote


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
