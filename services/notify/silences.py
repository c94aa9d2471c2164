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
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from services.common.escalations import NEVER_SILENCEABLE_PREFIXES, Escalation
from services.common.models import Strict
from services.notify.records import Recipient, Stored
from services.notify.routing import KNOWN_VALUES, LABELS, Routing, labels_match, labels_of

SilenceKind = Literal["silence", "maintenance"]
# What a silence may match on: the routing labels but `agency` (a silence is its agency's).
SILENCE_LABELS = tuple(label for label in LABELS if label != "agency") + ("receiver",)
MAX_SILENCE = timedelta(days=31)
START_SKEW = timedelta(minutes=5)  # how far in the past a silence may say it starts
# A silence's `match_re` is typed by a person and run on every notification of the agency: only
# alternatives of letters, digits and `_.:-`, each with at most one `.*`, so matching is linear
# in the label's length (no groups, no nested, counted or repeated wildcards).
_SAFE_ALTERNATIVE = re.compile(
    r"^(?:[A-Za-z0-9_:\- ]|\.(?!\*))*(?:\.\*(?:[A-Za-z0-9_:\- ]|\.(?!\*))*)?$"
)
MAX_SILENCES = 100  # an agency's silences not yet ended, at most


def safe_pattern(rx: str) -> bool:
    return len(rx) <= 200 and all(_SAFE_ALTERNATIVE.fullmatch(alt) for alt in rx.split("|"))


def printable_line(text: str) -> bool:
    """No control, format (direction overrides, zero-width) or line-separator characters."""
    return not any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in text)


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
        """Whether every matcher holds; a `match_re` outside the safe grammar (a record not
        written through the API or CLI) makes the silence match nothing."""
        if not all(safe_pattern(rx) for rx in self.match_re.values()):
            return False
        return labels_match(self.match, self.match_re, labels)


@dataclass(frozen=True)
class Mute:
    """Record the notification `suppressed`; send nothing."""

    silence_id: str
    to: None = None
    reason: Literal["silenced"] = "silenced"


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
        esc.silenceable is True
        and esc.due_at is None
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


Value = Annotated[str, Field(min_length=1, max_length=200)]


class SilenceRequest(Strict):
    """What a person asks for (API body, CLI options): matchers, or a receiver for a
    maintenance window; when; why."""

    match: Annotated[dict[str, Value], Field(max_length=10)] = {}
    match_re: Annotated[dict[str, Value], Field(max_length=10)] = {}
    receiver: Annotated[str, Field(max_length=64)] | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    reason: str = Field(min_length=3, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


def request_problems(
    request: SilenceRequest,
    agency_id: str,
    routing: Routing,
    now: datetime,
    existing: Iterable[Silence] = (),
) -> list[tuple[str, str]]:
    """What is wrong with a request, as (field, problem); never repeating what was sent.
    `existing`: every silence known, to keep an agency under MAX_SILENCES not yet ended."""
    problems: list[tuple[str, str]] = []
    agency = routing.agencies.get(agency_id)
    if agency is None:
        return [("agency", "this agency has no configuration")]
    live = [s for s in existing if s.agency_id == agency_id and s.state(now) != "expired"]
    if len(live) >= MAX_SILENCES:
        return [("silences", f"this agency has {MAX_SILENCES} silences not yet ended: expire some")]
    for kind, matchers in (("match", request.match), ("match_re", request.match_re)):
        for label, value in matchers.items():
            if label not in SILENCE_LABELS:
                problems.append((kind, f"unknown label (labels: {', '.join(SILENCE_LABELS)})"))
            elif kind == "match" and label in KNOWN_VALUES and value not in KNOWN_VALUES[label]:
                problems.append((f"match.{label}", f"not a known {label.replace('_', ' ')}"))
            elif kind == "match_re" and not safe_pattern(value):
                problems.append(
                    (
                        f"match_re.{label}",
                        "use only letters, digits, spaces, _ . : - and |, with at most one .* in"
                        " each alternative",
                    )
                )
    named = request.match.get("receiver")
    if named is not None and (named not in agency.receivers or ":" in named):
        problems.append(("match.receiver", "not one of this agency's receivers"))
    if not printable_line(request.reason):
        problems.append(("reason", "one line of visible text, without control characters"))
    has_matchers = bool(request.match or request.match_re)
    if request.receiver is not None:
        spec = agency.receivers.get(request.receiver)
        if has_matchers:
            problems.append(("receiver", "a maintenance window names a receiver and no matchers"))
        elif spec is None or ":" in request.receiver:
            problems.append(("receiver", "not one of this agency's receivers"))
        elif spec.fallback_receiver is None:
            problems.append(
                ("receiver", "has no fallback_receiver to take its messages during the window")
            )
    elif not has_matchers:
        problems.append(
            ("match", "a silence needs a matcher (or a receiver, for a maintenance window)")
        )
    starts = request.starts_at or now
    if starts < now - START_SKEW:
        problems.append(("starts_at", "is in the past: a silence starts now or later"))
    elif starts > now + MAX_SILENCE:
        problems.append(("starts_at", "a silence starts within 31 days"))
    if request.ends_at <= starts:
        problems.append(("ends_at", "must be after starts_at"))
    elif request.ends_at <= now:
        problems.append(("ends_at", "is already past"))
    elif request.ends_at - starts > MAX_SILENCE:
        problems.append(("ends_at", "a silence lasts at most 31 days"))
    return problems


def new_silence(request: SilenceRequest, agency_id: str, by: str, now: datetime) -> Silence:
    """The silence a valid request makes (its id random: a silence is made once)."""
    return Silence(
        silence_id=uuid.uuid4().hex,
        agency_id=agency_id,
        kind="maintenance" if request.receiver is not None else "silence",
        match=dict(request.match),
        match_re=dict(request.match_re),
        receiver=request.receiver,
        starts_at=request.starts_at or now,
        ends_at=request.ends_at,
        reason=request.reason,
        created_by=by,
        created_at=now,
    )


def expired(silence: Silence, by: str, now: datetime) -> Silence | None:
    """The silence expired now, or None if it has ended already (nothing to write)."""
    if silence.state(now) == "expired":
        return None
    return silence.model_copy(update={"expired_at": now, "expired_by": by})
