"""The compiled routing tree and its pure matching, modelled on Alertmanager's.

An escalation becomes one alert per recipient class, labelled `severity`, `rule_id`,
`recipient_class`, `agency`, `state`, `county` and `status`. Each alert walks the tree from the
root: children are tried in order, the first match wins unless it sets `continue: true`; if no
child matches, the node's own receiver takes it. Settings (`receiver`, `repeat_interval`,
`ack_timeout`, `send_resolved`) are inherited from the parent unless a node sets them.
The file that describes the tree, and its checks, are in services.notify.config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from services.common.escalations import RECIPIENT_CLASSES, SEVERITIES, Escalation
from services.notify.agencies import AgencyView, unknown_agency

if TYPE_CHECKING:
    from services.notify.config import Defaults, ReceiverSpec
    from services.notify.oncall import Schedule

LABELS = ("severity", "rule_id", "recipient_class", "agency", "state", "county", "status")
LABEL_SET = frozenset(LABELS)
KNOWN_VALUES: Mapping[str, frozenset[str]] = {
    "severity": frozenset(SEVERITIES),
    "recipient_class": RECIPIENT_CLASSES,
    "status": frozenset({"firing", "resolved"}),
}


MAX_MATCHED = 10_000  # label sets remembered by Routing.match


@dataclass(frozen=True)
class Route:
    """A compiled node: matchers plus effective (inherited) settings."""

    path: str
    match: Mapping[str, str]
    match_re: Mapping[str, re.Pattern[str]]
    cont: bool
    receiver: str
    repeat_interval: timedelta
    ack_timeout: timedelta
    send_resolved: bool
    children: tuple[Route, ...]
    escalation_policy: str | None = None  # an agency route's (inherited), else the agency's
    digest: timedelta | None = (
        None  # gather notifications that are no duty (services.notify.digest)
    )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return labels_match(self.match, self.match_re, labels)


def labels_match(
    match: Mapping[str, str],
    match_re: Mapping[str, str | re.Pattern[str]],
    labels: Mapping[str, str],
) -> bool:
    """Whether `labels` have every `match` value and fully match every `match_re` pattern (a
    route's, compiled, or a silence's)."""
    return all(labels.get(k) == v for k, v in match.items()) and all(
        re.fullmatch(rx, labels.get(k, "")) for k, rx in match_re.items()
    )


@dataclass(frozen=True)
class Target:
    """Where one recipient class of an escalation goes."""

    receiver: str
    recipient_class: str
    route: Route


@dataclass(frozen=True)
class Reach:
    """Whom an escalation level tells: a receiver, and the recipient class it is shown as."""

    receiver: str
    recipient_class: str


@dataclass(frozen=True)
class Level:
    reaches: tuple[Reach, ...]
    wait: timedelta  # before the next level, if nobody has acknowledged


@dataclass(frozen=True)
class EscalationPolicy:
    """An agency's ordered escalation levels, repeated `repeat` times after the last."""

    name: str
    levels: tuple[Level, ...]
    repeat: int = 0


@dataclass(frozen=True)
class Agency:
    """One tenant: how messages name it, its own receivers, and its tree (routing.yaml's with
    the agency's own routes tried first)."""

    view: AgencyView
    receivers: Mapping[str, ReceiverSpec]
    root: Route
    acknowledge_roles: frozenset[str]
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    policies: Mapping[str, EscalationPolicy] = field(default_factory=dict)
    default_policy: str | None = None  # None: the staff ladder (services.common.ladder)
    fallback_receiver: str | None = None  # where a silenced duty's notifications go instead

    def policy(self, route_policies: Iterable[str | None]) -> EscalationPolicy | None:
        """The escalation policy for an escalation whose first receivers' routes name
        `route_policies`: the first named, else the agency's default; None: the staff ladder."""
        name = next((n for n in route_policies if n is not None), self.default_policy)
        return self.policies.get(name) if name is not None else None

    def stopped_by(self, person_roles: Sequence[str] | None, receiver: str, legacy: bool) -> bool:
        """Whether an acknowledgement stops this agency's reminders and chain: a person of the
        agency holding a role it names does; a link of the release before, which names
        nobody, does if it went to one of the agency's own receivers; anyone else's is a
        receipt."""
        if person_roles is not None:
            return bool(self.acknowledge_roles.intersection(person_roles))
        return legacy and receiver in self.receivers


@dataclass(frozen=True)
class Routing:
    """routing.yaml's tree and shared receivers, and every configured agency. A receiver name
    is looked up for one agency only: its own receivers, then the shared ones."""

    root: Route
    shared: Mapping[str, ReceiverSpec]
    agencies: Mapping[str, Agency]
    defaults: Defaults
    shelter_photo: bool
    operator_receiver: str | None = None
    # Labels → the nodes they reach: `match` is pure and the tree never changes, and each
    # escalation is routed once per ladder rung (under a burst routing was a tenth of the time).
    _matched: dict[tuple[str, ...], tuple[Route, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def receiver(self, agency_id: str, name: str) -> ReceiverSpec | None:
        """The receiver `name` as agency `agency_id` has it; None if it has none by that name
        (another agency's receiver of that name is never found)."""
        agency = self.agencies.get(agency_id)
        own = agency.receivers.get(name) if agency is not None else None
        return own or self.shared.get(name)

    def agency(self, agency_id: str) -> AgencyView:
        agency = self.agencies.get(agency_id)
        return agency.view if agency is not None else unknown_agency(agency_id)

    def all_receivers(self) -> list[ReceiverSpec]:
        """Every receiver declared anywhere (for start-up checks such as webhook secrets)."""
        return [*self.shared.values()] + [
            r for a in self.agencies.values() for r in a.receivers.values()
        ]

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The nodes an alert reaches: the agency's tree (its routes, then routing.yaml's),
        plus every shared receiver routing.yaml's tree alone reaches. An agency's routes may
        add receivers; they can never take law enforcement or NCMEC away, whatever they match
        on."""
        if labels.keys() != LABEL_SET:
            return self._match(labels)  # other labels than labels_of's: not remembered
        key = tuple(labels[name] for name in LABELS)
        found = self._matched.get(key)
        if found is None:
            if len(self._matched) >= MAX_MATCHED:
                self._matched.clear()
            found = self._matched[key] = tuple(self._match(labels))
        return list(found)

    def _match(self, labels: Mapping[str, str]) -> list[Route]:
        agency = self.agencies.get(labels.get("agency", ""))
        if agency is None:
            return list(walk(self.root, labels))
        own = list(walk(agency.root, labels))
        reached = {node.receiver for node in own}
        kept = [
            node
            for node in walk(self.root, labels)
            if node.receiver in self.shared and node.receiver not in reached
        ]
        return own + kept

    def route(self, escalation: Escalation, classes: tuple[str, ...] | None = None) -> list[Target]:
        """Receivers for each recipient class of the escalation (each receiver once: the first
        class that reaches it decides the template)."""
        seen: set[str] = set()
        out: list[Target] = []
        for rc in classes if classes is not None else escalation.recipients:
            for node in self.match(labels_of(escalation, rc)):
                if node.receiver not in seen:
                    seen.add(node.receiver)
                    out.append(Target(node.receiver, rc, node))
        return out


def labels_of(escalation: Escalation, recipient_class: str) -> dict[str, str]:
    return {
        "severity": escalation.severity,
        "rule_id": escalation.rule_id,
        "recipient_class": recipient_class,
        "agency": escalation.agency_id,
        "state": escalation.jurisdiction.state,
        "county": escalation.jurisdiction.county or "",
        "status": escalation.status,
    }


def walk(node: Route, labels: Mapping[str, str]) -> Iterator[Route]:
    """The nodes whose receivers an alert with `labels` reaches, from `node` down."""
    matched_child = False
    for child in node.children:
        if child.matches(labels):
            found = list(walk(child, labels))
            yield from found
            matched_child = True
            if not child.cont:
                break
    if not matched_child:
        yield node
