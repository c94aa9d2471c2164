"""Who did what, when: the audit trail (care.audit.v1, key: agency id). A record names the actor
(a person's id, `token:<label>` or `cli:<name>`), the action and the object's id; never a child's
data or anything a person typed beyond ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from services.common import topics

AuditVia = Literal["api", "cli", "console"]


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    audit_id: str
    at: datetime
    agency_id: str
    actor: str
    via: AuditVia
    action: str  # e.g. silence.create, silence.expire
    object_id: str

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def audit_record(
    agency_id: str, actor: str, via: AuditVia, action: str, object_id: str, at: datetime
) -> AuditRecord:
    return AuditRecord(
        audit_id=uuid.uuid4().hex,
        at=at,
        agency_id=agency_id,
        actor=actor,
        via=via,
        action=action,
        object_id=object_id,
    )


class Writer(Protocol):
    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> object: ...


async def write_audit(producer: Writer, record: AuditRecord) -> None:
    """Append `record` to care.audit.v1, waiting for Kafka's acknowledgement."""
    await producer.send_and_wait(
        topics.AUDIT, key=record.agency_id.encode(), value=record.to_bytes()
    )
