"""The token of an `Authorization: Bearer <token>` header."""

from __future__ import annotations


def bearer_token(authorization: str | None) -> str | None:
    """The token, or None when the header is missing, of another scheme, or empty."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
