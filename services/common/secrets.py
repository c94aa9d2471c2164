"""Our own secrets (ack-link key, operator token, webhook signing keys, the canary's API key) must
be strong outside demo mode: at least 32 characters, not mostly one character, and never one of
the public demo values this repository ships. `CAREALERT_ENV=demo` (what `make run` sets) lifts
the rule for a laptop. Third-party passwords (SMTP, SASL) are not ours to judge.

A refusal names the setting and the rule, never the value.
"""

from __future__ import annotations

import hashlib
from typing import Final

MIN_LENGTH: Final = 32
MIN_DISTINCT: Final = 12

# The API tokens of deploy/local/tokens.yaml (services.common.tokens): an operator and an
# auditor token per demo agency, and one for the shared NCMEC receiver (every agency).
DEMO_OPERATOR_TOKEN_MO_JACKSON: Final = "demo-operator-mo-jackson-not-a-secret"
DEMO_AUDITOR_TOKEN_MO_JACKSON: Final = "demo-auditor-mo-jackson-not-a-secret"
DEMO_OPERATOR_TOKEN_TX_EL_PASO: Final = "demo-operator-tx-el-paso-not-a-secret"
DEMO_AUDITOR_TOKEN_TX_EL_PASO: Final = "demo-auditor-tx-el-paso-not-a-secret"
DEMO_RECEIVER_TOKEN_NCMEC: Final = "demo-receiver-ncmec-not-a-secret"
DEMO_API_TOKENS: Final = (
    DEMO_OPERATOR_TOKEN_MO_JACKSON,
    DEMO_AUDITOR_TOKEN_MO_JACKSON,
    DEMO_OPERATOR_TOKEN_TX_EL_PASO,
    DEMO_AUDITOR_TOKEN_TX_EL_PASO,
    DEMO_RECEIVER_TOKEN_NCMEC,
)
# The password of every person in deploy/local/users.yaml (services.common.people).
DEMO_PASSWORD: Final = "demo-password-not-for-production"

# Published in this repository (deploy/local, docker-compose, tests): anyone can read them.
DEMO_SECRETS: Final = frozenset(
    {
        *DEMO_API_TOKENS,
        DEMO_PASSWORD,
        "demo-ack-secret-not-for-production",
        "demo-operator-token",
        "demo-webhook-secret",
        "demo-not-a-secret",
        "other-demo-not-a-secret",
        "demo-canary-not-a-secret",
    }
)


# The SHA-256 of the demo API keys and tokens: a keys or tokens file holding one is a demo file.
def secret_hash(value: str) -> str:
    """The SHA-256 hex digest stored in place of an API key or token (never the value). Any
    str hashes, lone surrogates included, so whatever a client presents can be looked up."""
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


DEMO_KEY_HASHES: Final = frozenset(secret_hash(s) for s in DEMO_SECRETS)

# Parts of the placeholders in .env.example and the like.
PLACEHOLDER_PARTS: Final = ("replace-me", "changeme", "change-me", "placeholder")

GENERATE_HINT: Final = (
    "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def weakness(value: str) -> str | None:
    """Why `value` is not acceptable as one of our secrets, or None."""
    if value in DEMO_SECRETS or any(p in value.lower() for p in PLACEHOLDER_PARTS):
        return f"is a public demo value or a placeholder; {GENERATE_HINT}"
    if len(value) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters; {GENERATE_HINT}"
    if len(set(value)) < MIN_DISTINCT:
        return f"has too little variety (fewer than {MIN_DISTINCT} distinct characters)"
    return None
