"""Topic names (docs/contract.md, "Topics")."""

from typing import Final

EVENTS: Final = "care.events.v1"
EVENTS_DLQ: Final = "care.events.dlq"
ESCALATIONS: Final = "care.escalations.v1"
ESCALATIONS_DLQ: Final = "care.escalations.dlq"
NOTIFICATIONS: Final = "care.notifications.v1"
ACKS: Final = "care.acks.v1"

ALL: Final = (EVENTS, EVENTS_DLQ, ESCALATIONS, ESCALATIONS_DLQ, NOTIFICATIONS, ACKS)
