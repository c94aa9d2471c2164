"""Repeated connection errors of the Kafka client libraries are held back to one per cause every
30 s, with a count; our own log lines never are."""

from __future__ import annotations

import logging

from services.common.logs import RepeatFilter


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_one_line_per_cause_every_window_with_the_count_held_back() -> None:
    now = [0.0]
    f = RepeatFilter(window_s=30, clock=lambda: now[0])
    passed = []
    for i in range(4810):
        now[0] = i * 0.01  # 4,810 attempts in 48 s
        r = record("aiokafka", "Unable connect to node with id %s: %s", 1, "refused")
        if f.filter(r):
            passed.append(r)
    assert len(passed) == 2
    assert passed[1].getMessage().endswith("(and 2999 more like it in the last 30s)")
    assert passed[1].count == 2999  # type: ignore[attr-defined]


def test_causes_are_counted_apart_and_our_own_loggers_pass() -> None:
    f = RepeatFilter(window_s=30, clock=lambda: 5.0)
    assert f.filter(record("kafka.conn", "connect failed %s", 1))
    assert f.filter(record("kafka.conn", "metadata refresh failed"))
    assert not f.filter(record("kafka.conn", "connect failed %s", 2))
    for _ in range(100):
        assert f.filter(record("services.notify.worker", "Kafka refused a write"))
