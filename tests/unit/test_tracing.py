"""Trace context and dead-letter headers: pure functions."""

from __future__ import annotations

import pytest

from services.common import tracing
from services.common.dlq import DeadLetter, dlq_headers, original_headers

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "garbage",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # unknown version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        PARENT + "-extra",
        b"\xff\xfe",
    ],
)
def test_anything_but_a_valid_traceparent_is_dropped(bad: str | bytes | None) -> None:
    assert tracing.parse(bad) is None


def test_a_child_keeps_the_trace_and_flags_with_a_deterministic_span_of_its_own() -> None:
    child = tracing.child(PARENT, "esc-1")
    assert tracing.parse(child) == child
    assert child.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and child.endswith("-01")
    assert child != PARENT and child == tracing.child(PARENT, "esc-1")
    assert child != tracing.child(PARENT, "esc-2")


def test_headers_are_found_in_lists_and_mappings_and_absent_without_a_parent() -> None:
    assert tracing.from_headers([("x", b"1"), ("Traceparent", PARENT.encode())]) == PARENT
    assert tracing.from_headers({"traceparent": PARENT.encode()}) == PARENT
    assert tracing.from_headers(None) is None
    assert tracing.child_headers(None, "esc-1") == []
    [(name, value)] = tracing.child_headers(PARENT, "esc-1")
    assert name == "traceparent" and tracing.parse(value) is not None


def test_dead_letters_keep_the_record_headers_and_replay_restores_them() -> None:
    theirs = [("x-batch", b"7"), ("error", b"theirs"), ("traceparent", PARENT.encode())]
    headers = dlq_headers("payload: Field required", "care.events.v1", 3, 42, theirs)
    assert headers[:3] == [
        ("x-batch", b"7"),
        ("original-error", b"theirs"),
        ("traceparent", PARENT.encode()),
    ]
    assert dict(headers[3:]) == {
        "error": b"payload: Field required",
        "source-topic": b"care.events.v1",
        "source-partition": b"3",
        "source-offset": b"42",
    }
    dead = DeadLetter(b"k", b"v", (("x-batch", b"6"), *headers, ("original-x", b"kept as is")))
    assert original_headers(dead) == [  # in order, repeated names kept
        ("x-batch", b"6"),
        ("x-batch", b"7"),
        ("error", b"theirs"),
        ("traceparent", PARENT.encode()),
        ("original-x", b"kept as is"),
    ]
    assert dead.header("error") == b"payload: Field required"  # ours, written last
