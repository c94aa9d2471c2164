"""What every channel shares: the delivery it is given and how it reports failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from services.common.models import Strict
from services.common.people import Role
from services.notify.templates import Message


class Addressee(Strict):
    """Whom an email or SMS receiver writes to: exactly one of a fixed organisational address
    (`to`), the escalation's own caseworker or supervisor (`to_staff`), one person of the agency
    by id (`to_person`), the agency's first person holding a role (`to_role`) or whoever the
    agency's schedule puts on call at the step's time (`to_schedule`, services.notify.oncall);
    then, if that finds nobody with an address, `fallback_role` and then the `fallback`
    address. People are looked up in the people registry, for the escalation's agency only."""

    to: str | None = None
    to_staff: Literal["caseworker", "supervisor"] | None = None
    to_person: str | None = None
    to_role: Role | None = None
    to_schedule: str | None = None
    fallback_role: Role | None = None
    fallback: str | None = None

    def ways(self) -> list[str | None]:
        """The primary ways of addressing, of which a receiver gives exactly one."""
        return [self.to, self.to_staff, self.to_person, self.to_role, self.to_schedule]

    def names_people(self) -> bool:
        return bool(
            self.to_staff
            or self.to_person
            or self.to_role
            or self.to_schedule
            or self.fallback_role
        )


class DeliveryError(Exception):
    """A failed attempt. `retryable` says whether trying again may help; `reason` is a short
    fixed code for metrics and records (never contains addresses or content)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Delivery:
    notification_id: str
    escalation_id: str
    receiver: str
    recipient_class: str
    address: str  # email address, phone number or URL
    message: Message
    options: Strict | None = None  # the receiver's channel settings (e.g. WebhookTarget)
    person_id: str | None = None  # the person it is addressed to, when it is one
    agency_id: str = ""  # whose: no connection is shared between agencies (channels.http)


class Channel(Protocol):
    name: str

    async def send(self, delivery: Delivery) -> None:
        """Deliver once. Raises DeliveryError."""


def classify_http(status: int) -> DeliveryError:
    """Alertmanager's rule: 429 and 5xx may succeed later, other 4xx will not."""
    if status == 429:
        return DeliveryError("http_429", retryable=True)
    if status >= 500:
        return DeliveryError("http_5xx", retryable=True)
    return DeliveryError("http_4xx", retryable=False)
