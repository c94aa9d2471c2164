"""Topic names (docs/contract.md, "Topics")."""

import re
from typing import Final

EVENTS: Final = "care.events.v1"
EVENTS_DLQ: Final = "care.events.dlq"
ESCALATIONS: Final = "care.escalations.v1"
ESCALATIONS_DLQ: Final = "care.escalations.dlq"
NOTIFICATIONS: Final = "care.notifications.v1"
ACKS: Final = "care.acks.v1"
# Silences and maintenance windows (compacted, key: silence id), and who did what (audit).
SILENCES: Final = "care.silences.v1"
AUDIT: Final = "care.audit.v1"

ALL: Final = (EVENTS, EVENTS_DLQ, ESCALATIONS, ESCALATIONS_DLQ, NOTIFICATIONS, ACKS, AUDIT)

# Per-agency input topics (docs/agency-topics.md): an agency's own Kafka principal writes its
# events to `care.events.in.<agency_id>`; the gate (services.gate) checks that each record is
# that agency's and forwards it to care.events.v1.
AGENCY_INPUT_PREFIX: Final = "care.events.in."
AGENCY_ID_PATTERN: Final = r"[a-z0-9-]{2,64}"
AGENCY_INPUT_PATTERN: Final = r"^care\.events\.in\.[a-z0-9-]{2,64}$"


def agency_input(agency_id: str) -> str:
    """The input topic of `agency_id`. Raises ValueError for an id outside `AGENCY_ID_PATTERN`."""
    if not re.fullmatch(AGENCY_ID_PATTERN, agency_id):
        raise ValueError("an agency id is 2 to 64 of a-z, 0-9 and '-'")
    return AGENCY_INPUT_PREFIX + agency_id


def agency_of_input(topic: str) -> str | None:
    """The agency whose input topic `topic` is, or None if it is not an agency input topic."""
    agency = topic.removeprefix(AGENCY_INPUT_PREFIX)
    if agency == topic or not re.fullmatch(AGENCY_ID_PATTERN, agency):
        return None
    return agency
