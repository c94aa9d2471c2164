"""Where a receiver's message goes for one escalation: its channel and address. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.escalations import Escalation
from services.common.models import Strict
from services.notify.config import ReceiverSpec, StaffContact


class NoContact(Exception):
    """The receiver has no address for this escalation (e.g. unknown caseworker, no fallback)."""


def resolve_address(
    spec: ReceiverSpec, esc: Escalation, staff: Mapping[str, StaffContact]
) -> tuple[str, str, Strict]:
    """(channel, address, the receiver's channel settings) for a receiver and an escalation."""

    def staff_field(role: str, channel: str) -> str | None:
        staff_id = esc.caseworker_id if role == "caseworker" else esc.supervisor_id
        contact = staff.get(staff_id) if staff_id else None
        if contact is None:
            return None
        return contact.email if channel == "email" else contact.sms

    if spec.email is not None:
        e = spec.email
        address = e.to or (staff_field(e.to_staff, "email") if e.to_staff else None) or e.fallback
        if not address:
            raise NoContact("no_contact")
        return "email", address, e
    if spec.webhook is not None:
        return "webhook", spec.webhook.url, spec.webhook
    if spec.sms is not None:
        s = spec.sms
        address = s.to or (staff_field(s.to_staff, "sms") if s.to_staff else None) or s.fallback
        if not address:
            raise NoContact("no_contact")
        return "sms", address, s
    raise NoContact("no_channel")
