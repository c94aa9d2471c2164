"""What notify writes and remembers, as the contract names them (docs/contract.md): the
notification record (`care.notifications.v1`), the acknowledgement (`care.acks.v1`), and the
open escalation with its delivery plan (notify's compacted open registry).

Records read back from Kafka may come from an older or a newer release: unknown fields are
ignored (the contract only ever adds fields), so an upgrade never forgets what was sent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from services.common.escalations import Escalation
from services.common.ids import stable_id

Status = Literal["delivered", "retrying", "failed", "suppressed", "dead_lettered"]


def notification_id(escalation_id: str, receiver: str, step: str) -> str:
    """Deterministic: the same (escalation, receiver, step) always has the same id."""
    return stable_id(escalation_id, receiver, step)


class Stored(BaseModel):
    """A record notify writes and reads back: tolerant of fields a newer release adds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @field_serializer("*", when_used="json")
    def _iso_times(self, value: Any) -> Any:
        # `2026-11-24T02:00:00+00:00`, as every release has written it.
        return value.isoformat() if isinstance(value, datetime) else value


class NotificationRecord(Stored):
    """One attempt or outcome of one notification (`retrying` records precede the final one).
    A `suppressed` one names the silence or maintenance window (`silence_id`) and, when the
    notification went to another receiver instead, which (`redirected_to`)."""

    notification_id: str
    escalation_id: str
    receiver: str
    recipient_class: str
    channel: str
    status: Status
    attempt: int
    step: str
    escalation_status: str
    at: datetime
    reason: str | None = None
    silence_id: str | None = None
    redirected_to: str | None = None
    person_id: str | None = None  # the person it was addressed to (e.g. whoever was on call)
    digest_id: str | None = None  # the digest it went out in (services.notify.digest)
    agency_id: str | None = None  # the escalation's agency (absent in older records)


AckVia = Literal["link", "api", "console"]
AckKind = Literal["note"]
NOTE_MAX_CHARS = 500
"""A note (with an acknowledgement, or added in the console): one printable line, this long."""
_NOTE_ID = "[0-9a-f]{32}"
NOTE_ID_PATTERN = f"^{_NOTE_ID}$"
"""A note's id: the console chooses one per form it shows (32 lowercase hexadecimal). For
pydantic, whose `$` is the end of the text (Python's also matches before a final newline: use
`is_note_id`)."""


def is_note_id(value: str) -> bool:
    return re.fullmatch(_NOTE_ID, value) is not None


class Ack(Stored):
    """One acknowledgement of an escalation: who (the person, or the receiver when no person),
    how, when, and an optional note. One per (escalation, who); a later one by someone else is
    added. `stops`: whether it stops the reminders and the escalation chain (the owning agency's
    people do; a receipt from law enforcement or a shelter is recorded and stops nothing).
    Records an older release wrote name only the receiver, and stopped the chain.

    A note (`kind: "note"`, added by a person in the console) shares the topic: it is no
    acknowledgement, never stops anything (`stops` is false whatever the record says), and is
    one per (escalation, note_id)."""

    escalation_id: str
    receiver: str
    acked_at: datetime
    person_id: str | None = None
    agency_id: str | None = None  # the acknowledging person's agency
    via: AckVia | None = None
    note: str | None = None
    stops: bool = True
    # Added: "note" for a note added in the console (stops nothing; one per note_id, which the
    # console chooses once per form so a double submit records one). Absent: an acknowledgement.
    kind: AckKind | None = None
    note_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_note_stops_nothing(cls, data: Any) -> Any:
        # Whatever a record says (a bug, or a hand-written one): a note never stops the chain.
        if isinstance(data, dict) and data.get("kind") == "note":
            return {**data, "stops": False}
        return data

    @model_validator(mode="after")
    def _a_note_is_a_persons_with_an_id(self) -> Ack:
        if self.kind == "note" and (self.note_id is None or self.person_id is None):
            raise ValueError("a note names its note_id and person_id")
        return self

    @property
    def is_note(self) -> bool:
        """A note added in the console: not an acknowledgement (it stops nothing and is never
        among who acknowledged)."""
        return self.kind == "note"

    @property
    def who(self) -> str:
        """The person's id, or `receiver:<name>` for a receiver that is no person (as shown)."""
        return self.person_id if self.person_id is not None else f"receiver:{self.receiver}"

    @property
    def key(self) -> tuple[str, str]:
        """What makes an acknowledgement one person's (or one receiver's), and a note one form's
        (its note_id): never confused, whatever a person's id looks like. Two records with one
        key are one; the first stands."""
        if self.kind == "note":
            return ("note", self.note_id or "")
        if self.person_id is not None:
            return ("person", self.person_id)
        return ("receiver", self.receiver)


def acknowledgements(acks: list[Ack]) -> list[Ack]:
    """The acknowledgements among an escalation's records of care.acks.v1, in order: its
    notes left out."""
    return [a for a in acks if not a.is_note]


class Recipient(Stored):
    """One receiver of an open escalation, with the route settings it was planned with."""

    receiver: str
    recipient_class: str
    repeat_interval_s: float | None = None
    send_resolved: bool = True
    digest_s: float | None = None  # its route gathers notifications that are no duty


class Widening(Stored):
    """A receiver that escalation level `level` adds when nobody has acknowledged."""

    level: int = Field(ge=1)
    receiver: str
    recipient_class: str


class PlanLevel(Stored):
    """One escalation level of a plan: its step (`e<level>`, `e<level>.<pass>` when a policy
    repeats), whom it tells, and how long to wait for an acknowledgement before the next."""

    step: str
    recipients: list[Recipient]
    wait_s: float


class Plan(Stored):
    """Fixed when an escalation opens: its first receivers with their reminder intervals and
    whether they hear of the resolution, the ack timeout, the escalation levels (from the
    agency's escalation policy, or the staff ladder), and how many reminders at most.

    `widenings` is what the release before reads (the levels' receivers, each level after
    level × the ack timeout); a plan without `levels` was stored by it and is read that way."""

    recipients: list[Recipient]
    ack_timeout_s: float | None = None
    widenings: list[Widening] = []
    max_reminders: int = 0
    levels: list[PlanLevel] | None = None
    policy: str | None = None  # the escalation policy's name; None: the staff ladder


class OpenEntry(Stored):
    """What notify remembers about a firing escalation until it is resolved.

    Stored in the compacted open registry, readable by the release before and after this one
    (they run side by side during a rolling update): `targets` stays the `[receiver, recipient
    class]` pairs of who was told first, and the plan is a separate key older releases ignore
    (an entry without one is planned once from the routing in force, and stored again).
    """

    model_config = ConfigDict(extra="ignore", frozen=False)

    escalation: Escalation
    partition: int
    first_sent_at: datetime
    targets: list[tuple[str, str]] = []
    plan: Plan | None = None
    # Who stopped the reminders and chain (the first acknowledgement that stops them), from
    # care.acks.v1, not stored.
    acked_by: str | None = Field(default=None, exclude=True)
