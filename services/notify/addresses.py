"""Where a receiver's message goes for one escalation: its channel and address. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.escalations import Escalation
from services.common.models import Strict
from services.notify.channels.email import EmailTarget
from services.notify.channels.sms import SmsTarget
from services.notify.config import ReceiverSpec, StaffContact


class NoContact(Exception):
    """The receiver has no address for this escalation (e.g. unknown caseworker, no fallback)."""


def resolve_address(
    spec: ReceiverSpec, esc: Escalation, staff: Mapping[str, StaffContact]
) -> tuple[str, str, Strict]:
    """(channel, address, the receiver's channel settings) for a receiver and an escalation."""

    def person_or_fixed(target: EmailTarget | SmsTarget, channel: str) -> str:
        """The fixed address, else the staff member's on file, else the fallback."""
        found = target.to
        if found is None and target.to_staff is not None:
            staff_id = esc.caseworker_id if target.to_staff == "caseworker" else esc.supervisor_id
            contact = staff.get(staff_id) if staff_id else None
            if contact is not None:
                found = contact.email if channel == "email" else contact.sms
        found = found or target.fallback
        if not found:
            raise NoContact("no_contact")
        return found

    if spec.email is not None:
        return "email", person_or_fixed(spec.email, "email"), spec.email
    if spec.webhook is not None:
        return "webhook", spec.webhook.url, spec.webhook
    if spec.sms is not None:
        return "sms", person_or_fixed(spec.sms, "sms"), spec.sms
    raise NoContact("no_channel")
