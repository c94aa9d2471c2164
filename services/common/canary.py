"""The canary: proof of life for the whole pipeline.

Every few minutes notify posts a synthetic `missing.opened` of the reserved agency
`carealert-canary` to ingest, with that agency's own API key; rules evaluates it like any event
(but keeps no state for it and counts it nowhere), and when its `federal.report-ncmec` escalation
reaches notify, notify records the arrival instead of routing it: a canary never reaches a person,
a notification record or the open registry. If canaries stop arriving, `CarealertCanaryMissing`
fires, whatever the health checks say.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

CANARY_AGENCY: Final = "carealert-canary"
CANARY_RULE: Final = "federal.report-ncmec"
# Children cycled through, so over a few rounds canaries cross many partitions.
CANARY_CHILDREN: Final = 32


def is_canary(agency_id: str) -> bool:
    return agency_id == CANARY_AGENCY


def canary_event(seq: int, now: datetime) -> dict[str, Any]:
    """A valid event (docs/contract.md shape) of the canary agency."""
    stamp = now.isoformat()
    return {
        "event_id": f"canary-{uuid.uuid4()}",
        "event_type": "missing.opened",
        "schema_version": 1,
        "agency_id": CANARY_AGENCY,
        "child_id": f"canary-{seq % CANARY_CHILDREN}",
        "occurred_at": stamp,
        "jurisdiction": {"state": "MO", "county": "Canary"},
        "payload": {
            "episode_id": f"canary-{seq}",
            "last_seen_at": stamp,
            "circumstances": "unknown",
        },
    }
