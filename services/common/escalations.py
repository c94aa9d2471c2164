"""The Escalation contract (docs/contract.md, "Escalation"), shared by rules (writer) and notify
(reader)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime

from services.common.events import AgencyId, Id, Jurisdiction, LongText, MultiLineText, Text
from services.common.models import Strict

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
Status = Literal["firing", "resolved"]
RecipientClass = Literal[
    "law_enforcement",
    "ncmec",
    "caseworker",
    "supervisor",
    "director",
    "court",
    "guardian_ad_litem",
    "attorney",
    "parent",
    "shelter_network",
    "placement_provider",
    "on_call",
]
# Rules no silence may mute, whatever the policy says: federal duties, the missing-child
# broadcast, the compliance checks (services.notify.silences).
NEVER_SILENCEABLE_PREFIXES: tuple[str, ...] = ("federal.", "alert.", "compliance.")
RECIPIENT_CLASSES: frozenset[str] = frozenset(RecipientClass.__args__)  # type: ignore[attr-defined]


# Every text field of an escalation reaches a message (a mail header, a webhook, an SMS): the
# Event contract's rules hold here too, so a record written straight to care.escalations.v1
# with a CR, LF, NUL, bidi or zero-width character is dead-lettered, not sent.


class Subject(Strict):
    """What law enforcement and NCMEC need to look for the child (docs/domain.md, "Who gets what").
    Only present on escalations about a missing episode; templates choose what each recipient
    class may see."""

    name: Text | None = None
    aliases: tuple[Text, ...] = ()
    date_of_birth: Text | None = None
    sex: Text | None = None
    physical_description: MultiLineText | None = None
    clothing: LongText | None = None
    photo_url: LongText | None = None
    last_seen_at: datetime | None = None
    last_seen_location: LongText | None = None
    places_frequented: tuple[Text, ...] = ()
    immediate_risks: tuple[Text, ...] = ()


class Escalation(Strict):
    escalation_id: Id
    status: Status
    rule_id: Id
    policy_version: Id
    severity: Severity
    action: LongText
    basis: LongText
    agency_id: AgencyId
    child_id: Id
    episode_id: Id | None = None
    jurisdiction: Jurisdiction
    recipients: tuple[RecipientClass, ...]
    due_at: AwareDatetime | None = None
    evidence: dict[str, Any] = {}
    triggered_by: tuple[str, ...] = ()
    created_at: AwareDatetime
    # Added to the contract: who to contact and who to look for.
    caseworker_id: Id | None = None
    supervisor_id: Id | None = None
    subject: Subject | None = None
    # When Kafka took the triggering event (its record timestamp); for end-to-end latency.
    event_accepted_at: AwareDatetime | None = None
    # Added: the policy lets a silence mute its notifications (never a duty's). Written only
    # when true, so the release before (which refuses unknown fields) reads every other record.
    silenceable: bool | None = None

    @property
    def key(self) -> str:
        return f"{self.agency_id}:{self.child_id}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()
