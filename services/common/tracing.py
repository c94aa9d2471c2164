"""W3C Trace Context (`traceparent`) carried from an event to its escalations and notifications.

An agency system that traces its requests sends `traceparent` with the event (an HTTP header at
ingest, a record header on Kafka). Every record carealert writes because of that event carries a
`traceparent` of the same trace, with a span id of its own, so the agency's tracing shows where its
event went. Header values are outside input: anything that is not a well-formed version-00
`traceparent` is dropped, never echoed or logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
from collections.abc import Iterable, Mapping

HEADER = "traceparent"

_FORMAT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

current: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)
"""The traceparent of the record being handled in this task, if it came with one."""


def parse(value: str | bytes | None) -> str | None:
    """The header if it is a valid version-00 traceparent (lowercase, non-zero ids), else None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _FORMAT.fullmatch(value)
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_SPAN:
        return None
    return value


def from_headers(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> str | None:
    """The valid traceparent among Kafka record headers (the first one), or None."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == HEADER:
            return parse(value)
    return None


def child(parent: str, span_of: str) -> str:
    """A traceparent in the parent's trace for the span that produced `span_of` (e.g. an
    escalation id): deterministic, so a replay writes the same header."""
    trace_id, flags = parent[3:35], parent[-2:]
    span = hashlib.sha256(f"{parent}|{span_of}".encode()).hexdigest()[:16]
    if span == _ZERO_SPAN:  # pragma: no cover  # one chance in 2**64
        span = "0" * 15 + "1"
    return f"00-{trace_id}-{span}-{flags}"


def child_headers(parent: str | None, span_of: str) -> list[tuple[str, bytes]]:
    """Kafka headers for a record written because of a traced input (none if untraced)."""
    if parent is None:
        return []
    return [(HEADER, child(parent, span_of).encode())]
