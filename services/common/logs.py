"""Structured JSON logs without PII.

Only the message and the keys listed in SAFE_FIELDS are written: ids that are not personal
(event_id, escalation_id, rule_id, topic, partition, ...) may be passed with `extra=`; anything
else given in `extra` is dropped, so a payload passed by mistake never reaches the log.
"""

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

SAFE_FIELDS: Final = frozenset(
    {
        "service",
        "event_id",
        "event_type",
        "escalation_id",
        "notification_id",
        "rule_id",
        "receiver",
        "channel",
        "status",
        "reason",
        "topic",
        "partition",
        "offset",
        "count",
        "attempt",
        "url",
        "port",
        "elapsed_ms",
    }
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "msg": record.getMessage(),
        }
        for key in SAFE_FIELDS:
            if key in record.__dict__ and key != "service":
                out[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages of library exceptions can quote input values.
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)


# Client libraries that log one line per failed connection attempt: during a broker outage
# they repeat themselves thousands of times.
CHATTY: Final = ("kafka", "aiokafka", "faust.transport", "mode")


class RepeatFilter(logging.Filter):
    """Lets one record per cause (logger and message template) through every `window_s`
    seconds for the CHATTY libraries; the next one that passes says how many were held back
    (`count`). Our own loggers are never held back."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._last: dict[tuple[str, object], float] = {}
        self._held: dict[tuple[str, object], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(CHATTY):
            return True
        cause = (record.name, record.msg)
        now = self.clock()
        last = self._last.get(cause)
        if last is not None and now - last < self.window_s:
            self._held[cause] = self._held.get(cause, 0) + 1
            return False
        self._last[cause] = now
        held = self._held.pop(cause, 0)
        if held:
            record.count = held
            record.msg = f"{record.msg} (and {held} more like it in the last {self.window_s:.0f}s)"
        return True


def configure(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines, repeats of chatty libraries held
    back to one per cause every 30 s."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
