"""Silences and maintenance windows, and what they do to one notification. Pure: no clock
reads, no I/O (they are kept in the compacted topic care.silences.v1 by services.notify.ledger
and made by services.notify.silences_api and `carealert silence`).

A silence belongs to one agency and matches notifications by label (the routing labels plus
`receiver`), from `starts_at` to `ends_at` (or until expired). What it does depends on the rule:

- a rule the policy marks `silenceable: true` (e.g. `risk.tier-changed`) is muted: the
  notification is recorded `suppressed` with the silence's id, and not sent;
- anything else (the missing-child broadcast, every federal or state duty, every `.overdue`) is
  never dropped: it goes to the agency's `fallback_receiver` instead, and the record says
  `suppressed`, the silence's id and where it went (with no fallback receiver it is sent as if
  there were no silence);
- receivers every agency shares (law enforcement, NCMEC, the shelter network) are never
  silenced: an agency can not keep a report from the police.

A maintenance window names one of the agency's receivers (a webhook endpoint down for planned
work): for the window its notifications go to the receiver's declared `fallback_receiver`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.common.escalations import NEVER_SILENCEABLE_PREFIXES, Escalation
from services.notify.records import Recipient, Stored
from services.notify.routing import LABELS, Routing, labels_of

SilenceKind = Literal["silence", "maintenance"]
# What a silence may match on: the routing labels but `agency` (a silence is its agency's).
SILENCE_LABELS = tuple(label for label in LABELS if label != "agency") + ("receiver",)


class Silence(Stored):
    """One silence or maintenance window, as kept in care.silences.v1 (key: silence_id)."""

    silence_id: str
    agency_id: str
    kind: SilenceKind = "silence"
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    receiver: str | None = None  # a maintenance window's receiver
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str  # a person's id, or `token:<label>` / `cli:<name>`
    created_at: datetime
    expired_at: datetime | None = None
    expired_by: str | None = None

    def active(self, at: datetime) -> bool:
        end = min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at
        return self.starts_at <= at < end

    def state(self, at: datetime) -> Literal["pending", "active", "expired"]:
        if self.active(at):
            return "active"
        return "pending" if at < self.starts_at and self.expired_at is None else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match.items()) and all(
            re.fullmatch(rx, labels.get(k, "")) for k, rx in self.match_re.items()
        )


@dataclass(frozen=True)
class Mute:
    """Record the notification `suppressed`; send nothing."""

    silence_id: str


@dataclass(frozen=True)
class Redirect:
    """Record the notification `suppressed`; send it to `to` instead."""

    silence_id: str
    to: str
    reason: Literal["silenced", "maintenance"]


Verdict = Mute | Redirect | None


def may_mute(esc: Escalation) -> bool:
    """Whether a silence may drop `esc`'s notifications: only a rule the policy marks
    silenceable, never a federal duty, the missing-child broadcast or an overdue duty."""
    return (
        esc.silenceable
        and not esc.rule_id.startswith(NEVER_SILENCEABLE_PREFIXES)
        and not esc.rule_id.endswith(".overdue")
    )


def verdict(
    esc: Escalation,
    target: Recipient,
    at: datetime,
    silences: Iterable[Silence],
    routing: Routing,
) -> Verdict:
    """What the agency's silences active at `at` (the step's scheduled time) do to one
    notification: mute it, redirect it, or nothing (None)."""
    agency = routing.agencies.get(esc.agency_id)
    if agency is None or target.receiver not in agency.receivers:
        return None  # shared receivers are never silenced
    mine = sorted(
        (s for s in silences if s.agency_id == esc.agency_id and s.active(at)),
        key=lambda s: s.silence_id,
    )
    for s in mine:
        if s.kind == "maintenance" and s.receiver == target.receiver:
            fallback = agency.receivers[target.receiver].fallback_receiver
            if fallback is not None:
                return Redirect(s.silence_id, fallback, "maintenance")
    labels = {**labels_of(esc, target.recipient_class), "receiver": target.receiver}
    for s in mine:
        if s.kind != "silence" or not s.matches(labels):
            continue
        if may_mute(esc):
            return Mute(s.silence_id)
        fallback = agency.fallback_receiver
        if fallback is not None and fallback != target.receiver:
            return Redirect(s.silence_id, fallback, "silenced")
        return None
    return None
