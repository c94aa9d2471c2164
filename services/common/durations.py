"""Durations as people write them in policy and routing files: 2h, 1d12h, 30m, now, none."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_RE = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def parse_duration(text: str) -> timedelta | None:
    """'2h', '1d12h', '30m', '45s', 'now' (zero) or 'none' (no deadline, returns None)."""
    if text == "none":
        return None
    if text == "now":
        return timedelta(0)
    m = DURATION_RE.match(text)
    if not text or m is None:
        raise ValueError(f"{text!r} is not a duration like 2h, 1d12h, 30m, now or none")  # noqa: E501
    return timedelta(
        days=int(m["d"] or 0),
        hours=int(m["h"] or 0),
        minutes=int(m["m"] or 0),
        seconds=int(m["s"] or 0),
    )
