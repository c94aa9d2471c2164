"""Deterministic ids: the same parts always give the same id, so a replay after a crash writes
the same escalation and notification ids and receivers de-duplicate them."""

from __future__ import annotations

import hashlib


def stable_id(*parts: str) -> str:
    """32 hex characters of SHA-256 over the parts joined by the unit separator (U+001F)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
