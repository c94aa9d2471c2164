"""Ack links: a token binding an escalation, a receiver, the person written to (when the
message went to a person) and an expiry (HMAC-SHA256), so that only the one a message went to can
acknowledge it, as themselves, and only for a while. Pure.

The signed text is a JSON array `["carealert-ack/2", escalation, receiver, person or null,
expiry]`: no id can be chosen to read as another subject. Links the release before this one
sent signed `escalation:receiver:expiry`; they are still taken until they expire (at most
`CAREALERT_ACK_TOKEN_TTL_S` after the upgrade), as `legacy`, because they meant "this receiver
acknowledges" and name nobody.

The console (services.console) shares the secret and mints, for each request it sends for a
signed-in person, a token for the subject (escalation, `console`, that person) good for two minutes
(`console_ack_token`): notify stays the only one that records acknowledgements, and checks
these tokens like any other, never as a link of the release before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote

TOKEN_VERSION = "carealert-ack/2"

CONSOLE_RECEIVER = "console"
"""The receiver a console token names: no receiver of routing.yaml or an agency file may be
called so (services.notify.config refuses the name)."""
CONSOLE_TOKEN_TTL = timedelta(seconds=120)
# How far ahead of notify's clock a console token's expiry may lie: the TTL and some skew
# between the console's host and notify's. A token good for longer is refused (a console that
# minted one has a bug; such a token must not outlive the page it was put in).
CONSOLE_TOKEN_MAX_AHEAD = CONSOLE_TOKEN_TTL + timedelta(seconds=30)

Verdict = Literal["ok", "legacy", "invalid", "expired"]


@dataclass(frozen=True)
class AckSubject:
    """Who an ack link is for: a receiver of an escalation and, if it is a person, who."""

    escalation_id: str
    receiver: str
    person_id: str | None = None


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def _signed(subject: AckSubject, expires: int) -> bytes:
    parts = [TOKEN_VERSION, subject.escalation_id, subject.receiver, subject.person_id, expires]
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=True).encode()


def ack_token(secret: str, subject: AckSubject, expires: int) -> str:
    """`<expiry, unix seconds>.<HMAC>`: binds the escalation, the receiver, the person (or
    none) and the expiry."""
    return f"{expires}.{_mac(secret, _signed(subject, expires))}"


def legacy_ack_token(secret: str, escalation_id: str, receiver: str, expires: int) -> str:
    """The token the release before this one put in its links (no person)."""
    return f"{expires}.{_mac(secret, f'{escalation_id}:{receiver}:{expires}'.encode())}"


def check_ack_token(secret: str, subject: AckSubject, token: str, now: datetime) -> Verdict:
    """ "ok" if the token is good now for exactly this subject; "legacy" for a link of the
    release before (subject without a person); otherwise "invalid" or "expired". Never raises,
    whatever the token holds (non-ASCII, no dot, not a number)."""
    names = [subject.escalation_id, subject.receiver, subject.person_id or ""]
    if not token.isascii() or not all(n.isprintable() for n in names):
        return "invalid"
    expires_text, dot, _ = token.partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return "invalid"
    expires = int(expires_text)
    verdict: Verdict
    if hmac.compare_digest(ack_token(secret, subject, expires).encode(), token.encode()):
        verdict = "ok"
    elif subject.person_id is None and ":" not in subject.escalation_id + subject.receiver:
        legacy = legacy_ack_token(secret, subject.escalation_id, subject.receiver, expires)
        if not hmac.compare_digest(legacy.encode(), token.encode()):
            return "invalid"
        verdict = "legacy"
    else:
        return "invalid"
    return "expired" if now.timestamp() > expires else verdict


def console_ack_token(secret: str, escalation_id: str, person_id: str, now: datetime) -> str:
    """The token the console sends with a request of `person_id` about `escalation_id`: binds the
    escalation, receiver `console` and the person, and expires 120 s after `now` (aware;
    ValueError for a naive time, whose instant is unknown)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    expires = int((now + CONSOLE_TOKEN_TTL).timestamp())
    return ack_token(secret, AckSubject(escalation_id, CONSOLE_RECEIVER, person_id), expires)


def check_console_token(
    secret: str, escalation_id: str, person_id: str, token: str, now: datetime
) -> Verdict:
    """check_ack_token for the console's subject (escalation, `console`, person), and
    "invalid" too for a token expiring further ahead than the console ever mints (120 s, plus
    30 s for clocks apart). Never "legacy": the subject names a person."""
    verdict = check_ack_token(
        secret, AckSubject(escalation_id, CONSOLE_RECEIVER, person_id), token, now
    )
    if (
        verdict == "ok"
        and int(token.partition(".")[0]) > (now + CONSOLE_TOKEN_MAX_AHEAD).timestamp()
    ):
        return "invalid"
    return verdict


def ack_url(base: str, secret: str, subject: AckSubject, expires: datetime) -> str:
    token = ack_token(secret, subject, int(expires.timestamp()))
    path = f"/v1/escalations/{subject.escalation_id}/ack"
    person = f"&person={quote(subject.person_id)}" if subject.person_id is not None else ""
    return f"{base.rstrip('/')}{path}?receiver={quote(subject.receiver)}{person}&token={token}"
