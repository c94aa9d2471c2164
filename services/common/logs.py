"""Structured JSON logs without PII.

Only the message and the keys listed in SAFE_FIELDS are written: ids that are not personal
(event_id, escalation_id, rule_id, topic, partition, ...) may be passed with `extra=`; anything
else given in `extra` is dropped, so a payload passed by mistake never reaches the log.
"""

import json
import logging
import sys
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


def configure(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
