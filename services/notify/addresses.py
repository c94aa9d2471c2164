"""Where a receiver's message goes for one escalation: its channel, address and, when it is a
person, who. Pure: people are looked up in a `Directory`, always for the escalation's agency, so
an escalation of one agency can never reach another agency's people; a schedule is asked who is
on call at the step's scheduled time (never the moment it runs), so a replay reaches the same
person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.common.escalations import Escalation
from services.common.models import Strict
from services.notify.channels.base import Addressee
from services.notify.config import ReceiverSpec
from services.notify.oncall import Schedule

# Why a receiver reached nobody: no person, or nobody on call (a level that resolves to nobody
# falls through to the next one: services.notify.schedule).
NOBODY_REASONS = frozenset({"no_contact", "nobody_on_call"})


class NoContact(Exception):
    """The receiver has no address for this escalation (e.g. unknown caseworker, no fallback,
    nobody on call). Its text is one of NOBODY_REASONS or `no_channel`."""


class Contactable(Protocol):
    """What notify needs of a person (services.common.people.Person has it)."""

    @property
    def id(self) -> str: ...
    @property
    def agency_id(self) -> str: ...
    @property
    def roles(self) -> Sequence[str]: ...
    @property
    def email(self) -> str | None: ...
    @property
    def sms(self) -> str | None: ...
    @property
    def disabled(self) -> bool: ...


class Directory(Protocol):
    """People, found only within one agency (services.common.people.People)."""

    def get(self, agency_id: str, person_id: str) -> Contactable | None: ...
    def with_role(self, agency_id: str, role: str) -> Sequence[Contactable]: ...


@dataclass(frozen=True)
class Address:
    channel: str
    address: str
    options: Strict
    person_id: str | None = None  # the person written to; None for an organisation's address


def _on_call(
    name: str, esc: Escalation, people: Directory, at: datetime, schedules: Mapping[str, Schedule]
) -> list[Contactable | None]:
    """Whoever schedule `name` puts on call at `at`, then its fallback person."""
    schedule = schedules.get(name)
    if schedule is None:
        return []
    try:
        on_call = schedule.on_call(at)
    except Exception:  # a feed whose recurrence can not be expanded: its fallback person
        on_call = None
    ids = [on_call, schedule.fallback_person]
    return [people.get(esc.agency_id, pid) for pid in dict.fromkeys(ids) if pid is not None]


def _people(
    target: Addressee,
    esc: Escalation,
    people: Directory,
    at: datetime,
    schedules: Mapping[str, Schedule],
) -> list[Contactable]:
    """The people the target names, in the order they are tried (fallback role last)."""
    found: list[Contactable | None] = []
    if target.to_schedule is not None:
        found.extend(_on_call(target.to_schedule, esc, people, at, schedules))
    if target.to_staff is not None:
        staff_id = esc.caseworker_id if target.to_staff == "caseworker" else esc.supervisor_id
        found.append(people.get(esc.agency_id, staff_id) if staff_id else None)
    if target.to_person is not None:
        found.append(people.get(esc.agency_id, target.to_person))
    if target.to_role is not None:
        found.extend(people.with_role(esc.agency_id, target.to_role)[:1])
    if target.fallback_role is not None:
        found.extend(people.with_role(esc.agency_id, target.fallback_role)[:1])
    return [p for p in found if p is not None and not p.disabled]


def _address(
    target: Addressee,
    channel: str,
    esc: Escalation,
    people: Directory,
    at: datetime,
    schedules: Mapping[str, Schedule],
) -> Address:
    for person in _people(target, esc, people, at, schedules):
        contact = person.email if channel == "email" else person.sms
        if contact:
            return Address(channel, contact, target, person.id)
    fixed = target.to or target.fallback
    if not fixed:
        raise NoContact("nobody_on_call" if target.to_schedule else "no_contact")
    return Address(channel, fixed, target)


def resolve_address(
    spec: ReceiverSpec,
    esc: Escalation,
    people: Directory,
    at: datetime | None = None,
    schedules: Mapping[str, Schedule] | None = None,
) -> Address:
    """The receiver's channel and address for `esc`: the person it names (the escalation's
    caseworker or supervisor, a person by id, the first with a role, whoever the schedule puts
    on call at `at`, the step's scheduled time, default the escalation's creation) if they
    are enabled and have an address for the channel, else the fixed or fallback address.
    Raises NoContact."""
    when = at if at is not None else esc.created_at
    known = schedules if schedules is not None else {}
    if spec.email is not None:
        return _address(spec.email, "email", esc, people, when, known)
    if spec.webhook is not None:
        return Address("webhook", spec.webhook.url, spec.webhook)
    if spec.sms is not None:
        return _address(spec.sms, "sms", esc, people, when, known)
    raise NoContact("no_channel")
