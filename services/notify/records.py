"""What notify writes and remembers: deterministic notification ids and the open escalation
it keeps until it is resolved (persisted in its compacted open-registry topic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.escalations import Escalation
from services.common.ids import stable_id


def notification_id(escalation_id: str, receiver: str, step: str) -> str:
    """Deterministic: the same (escalation, receiver, step) always has the same id."""
    return stable_id(escalation_id, receiver, step)


@dataclass
class OpenEntry:
    """What notify remembers about a firing escalation until it is resolved."""

    escalation: Escalation
    partition: int
    first_sent_at: datetime
    acked_by: str | None = None
    targets: list[tuple[str, str]] = field(default_factory=list)  # (receiver, recipient class)

    def to_json(self) -> dict[str, Any]:
        return {
            "escalation": self.escalation.model_dump(mode="json", exclude_none=True),
            "partition": self.partition,
            "first_sent_at": self.first_sent_at.isoformat(),
            "targets": self.targets,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenEntry:
        return cls(
            escalation=Escalation.model_validate(data["escalation"]),
            partition=int(data["partition"]),
            first_sent_at=datetime.fromisoformat(data["first_sent_at"]),
            targets=[(r, c) for r, c in data.get("targets", [])],
        )
