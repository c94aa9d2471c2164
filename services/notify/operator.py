"""The page to carealert's operators about an escalation whose agency has no configuration: it
still reached the shared receivers its route names (law enforcement, NCMEC), but none of the
agency's own people. Operators are not the agency: the page names the agency, the duty and a
reference, and nothing about the child."""

from __future__ import annotations

from services.common.escalations import Escalation
from services.notify.records import Recipient
from services.notify.templates import Message

OPERATOR_CLASS = "operator"  # not a recipient class of the policy: only this page uses it


def operator_recipient(receiver: str) -> Recipient:
    return Recipient(receiver=receiver, recipient_class=OPERATOR_CLASS, send_resolved=False)


def operator_notice(esc: Escalation) -> Message:
    reference = esc.escalation_id[:12]
    subject = f"carealert: agency {esc.agency_id} has no configuration (ref {reference})"
    body = (
        f"An escalation arrived for agency {esc.agency_id}, which has no agency file"
        f" (agencies/{esc.agency_id}.yaml).\n"
        f"Duty: {esc.action}.\n"
        "It was sent to the shared receivers its route names (such as law enforcement and"
        " NCMEC); none of the agency's own people were told.\n\n"
        "What to do now: call the agency's 24/7 line and tell them to act on reference"
        f" {reference}; then add the agency's file and people, and run `carealert policy check`."
        "\n"
    )
    data = {
        "escalation_id": esc.escalation_id,
        "agency_id": esc.agency_id,
        "action": esc.action,
        "reference": reference,
        "problem": "unknown_agency",
    }
    return Message(subject=subject, body=body, data=data)
