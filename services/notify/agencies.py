"""Agencies as tenants: one file per agency in the policy directory (`agencies/<agency_id>.yaml`)
with its display name, time zone, 24/7 number, its own receivers and optional routes, and
references to its people by id or role (never their names or contacts: those live in the people
registry, services.common.people).

An escalation of agency A can only reach A's receivers (and through them A's people) or the
receivers `routing.yaml` declares as shared (a state police intake, NCMEC). The checks that make
that so, each a problem naming file and path, are in services.notify.config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

# Who may stop an escalation's reminders and chain by acknowledging it (the agency's people).
AckRole = Literal["caseworker", "supervisor", "director", "on_call", "operator"]
DEFAULT_ACK_ROLES: tuple[AckRole, ...] = (
    "caseworker",
    "supervisor",
    "director",
    "on_call",
    "operator",
)


@dataclass(frozen=True)
class AgencyView:
    """What a message may say about an agency, and the zone its people read times in."""

    agency_id: str
    name: str
    time_zone: str
    contact_24_7: str
    known: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def unknown_agency(agency_id: str) -> AgencyView:
    """An agency with no configuration: its id, UTC, and no number to give."""
    return AgencyView(agency_id, agency_id, "UTC", "the agency's 24/7 line", known=False)
