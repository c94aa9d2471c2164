"""Facts for the compliance and trends report (docs/report.md): one row per missing episode, per
trafficking identification and per trafficking report duty, plus the duties overdue at `as_of`.

Facts carry codes and instants only: a child appears as `child_key` (a one-way digest, used to
group one child's episodes and never written to any output), never as an id, a name or a date
of birth; the age is an age band at the episode's opening.

Two sources make Facts:
- `facts_from_events` (here): events run through the rules engine as `carealert replay` runs
  them (services.rules.offline.VirtualRun), so every deadline is the engine's, per jurisdiction,
  and every discharge time is the discharging event's `occurred_at`.
- a database source (not written yet) reads the console's read model and builds the same
  dataclasses; `FactsSource` is the interface the command line takes, and `child_key` the
  digest both must use.

The report's arithmetic (services.report.measures.compute) reads Facts only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol, get_args

from services.common.canary import CANARY_AGENCY
from services.common.escalations import Escalation
from services.common.events import (
    EventBase,
    MissingLocated,
    MissingOpened,
    PlacementEnded,
    PlacementStarted,
    ScreeningCompleted,
    ScreeningResult,
    Setting,
    TraffickingIdentified,
)
from services.rules.clocks import local_date
from services.rules.core import Engine
from services.rules.offline import VirtualRun
from services.rules.state import ChildState, episode_id_of

LAW_ENFORCEMENT = "federal.report-law-enforcement"
NCMEC = "federal.report-ncmec"
RETURN_SCREENING = "federal.return-screening"
RETURN_DEBRIEF = "federal.return-debrief"
TRAFFICKING_REPORT = "federal.trafficking-report"
# The episode duties the report measures, and the event that discharges each (docs/contract.md,
# "Built-in policy"): used only when the engine never opened the duty because the discharging
# event came first (docs/clocks.md, "out of order").
EPISODE_DUTIES: Mapping[str, str] = {
    LAW_ENFORCEMENT: "missing.law_enforcement_reported",
    NCMEC: "missing.ncmec_reported",
    RETURN_SCREENING: "screening.completed",
    RETURN_DEBRIEF: "return.debrief_completed",
}
MEASURED_RULES = (*EPISODE_DUTIES, TRAFFICKING_REPORT)

AgeBand = Literal["0-11", "12-14", "15-17", "18+", "unknown"]
AGE_BANDS: tuple[AgeBand, ...] = get_args(AgeBand)
SEXES: tuple[str, ...] = ("female", "male", "other", "unknown")
NO_PLACEMENT = "none"
SETTINGS: tuple[str, ...] = (*get_args(Setting), NO_PLACEMENT)
SCREENING_RESULTS: tuple[ScreeningResult, ...] = get_args(ScreeningResult)
TraffickingStatus = Literal["suspected", "confirmed"]
TRAFFICKING_STATUSES: tuple[TraffickingStatus, ...] = get_args(TraffickingStatus)
# What started a trafficking report duty: an identification, or a screening with clear concern.
TraffickingTrigger = Literal["suspected", "confirmed", "clear_concern"]
TRAFFICKING_TRIGGERS: tuple[TraffickingTrigger, ...] = get_args(TraffickingTrigger)


def child_key(agency_id: str, child_id: str) -> str:
    """The digest that stands for a child in Facts: equal for one child's episodes, and no way
    back to the id. Every source of Facts must use this one."""
    return hashlib.sha256(f"{agency_id}\x00{child_id}".encode()).hexdigest()[:24]


def age_band(age: int | None) -> AgeBand:
    """The band of an age in whole years (None: no date of birth on record)."""
    if age is None or age < 0:
        return "unknown"
    if age <= 11:
        return "0-11"
    if age <= 14:
        return "12-14"
    if age <= 17:
        return "15-17"
    return "18+"


def age_on(birth: date, instant: datetime, state: str, county: str | None) -> int:
    """Whole years on the jurisdiction's local calendar date at `instant` (docs/clocks.md)."""
    d = local_date(instant, state, county)
    return d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class Duty:
    """One duty's clock. `due_at` is the engine's deadline; None when the engine never opened the
    duty because the event discharging it came first (so it was done before it began: on time).
    `done_at` is the discharging event's occurred_at (None: not discharged in the facts)."""

    rule_id: str
    started_at: datetime
    due_at: datetime | None
    done_at: datetime | None


@dataclass(frozen=True)
class EpisodeFacts:
    """One missing episode. `opened_at`: when the agency learned the child was missing (the
    missing.opened event's occurred_at, where the reporting clocks start); `closed_at`: when it
    learned the child was back (the missing.located event's occurred_at, where the return clocks
    start); `located_at`: when the child was found (its payload). The jurisdiction is the one on
    the opening event; sex is the child's as last recorded, the age band the age at `opened_at`,
    the setting the placement the child was in when last seen ("none" if in none)."""

    agency_id: str
    state: str
    county: str | None
    child_key: str
    age_band: AgeBand
    sex: str
    setting: str
    last_seen_at: datetime
    opened_at: datetime
    located_at: datetime | None
    closed_at: datetime | None
    law_enforcement: Duty
    ncmec: Duty
    return_screening: Duty | None  # None while no return is recorded
    return_debrief: Duty | None
    # The result of the screening that discharged the return screening (None: not screened).
    screening_result: ScreeningResult | None


@dataclass(frozen=True)
class Identification:
    """A trafficking.identified event: the child's, not an episode's (it names none)."""

    agency_id: str
    state: str
    county: str | None
    child_key: str
    status: TraffickingStatus
    identified_at: datetime


@dataclass(frozen=True)
class TraffickingReport:
    """One federal.trafficking-report duty the engine opened (one per finding while none is
    open for the child: a second finding while a report is owed shares that duty)."""

    agency_id: str
    state: str
    county: str | None
    child_key: str
    trigger: TraffickingTrigger
    duty: Duty


@dataclass(frozen=True)
class OverdueDuty:
    """An open escalation whose overdue step had fired at Facts.as_of (no child in it)."""

    agency_id: str
    state: str
    county: str | None
    rule_id: str
    due_at: datetime


@dataclass(frozen=True)
class Facts:
    """Everything the report reads. `overdue` describes the instant `as_of`; the rest holds
    instants the measures compare with `as_of` themselves (a source may know later events)."""

    as_of: datetime
    episodes: tuple[EpisodeFacts, ...] = ()
    identifications: tuple[Identification, ...] = ()
    trafficking_reports: tuple[TraffickingReport, ...] = ()
    overdue: tuple[OverdueDuty, ...] = ()
    policy_version: str | None = None


class FactsSource(Protocol):
    """Where the command line gets Facts: the events file today, the console's database next
    (`carealert report --database URL`): one agency's Facts as they stood at `as_of`."""

    def facts(self, agency_id: str, as_of: datetime) -> Facts: ...


# --- from events, through the engine ---------------------------------------------------------


@dataclass
class _Seen:
    """What an applied event leaves for the facts (its jurisdiction, when, what it says)."""

    at: datetime
    state: str
    county: str | None
    event_type: str
    result: ScreeningResult | None = None
    status: TraffickingStatus | None = None


@dataclass
class _Opened:
    at: datetime
    last_seen_at: datetime
    state: str
    county: str | None


@dataclass
class _Fired:
    rule_id: str
    child: tuple[str, str]
    episode_id: str | None
    due_at: datetime | None
    started_at: datetime
    trigger: str
    done_at: datetime | None = None
    done_by: str | None = None


@dataclass
class _Child:
    placements: list[tuple[datetime, str, str]] = field(default_factory=list)
    ended: dict[str, datetime] = field(default_factory=dict)
    opened: dict[str, _Opened] = field(default_factory=dict)
    located: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    # (episode or "", event type) -> the earliest such event's id
    first: dict[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)


class FactsBuilder:
    """Facts from events, through `engine` on a virtual clock (as `carealert replay`).

    Add events in occurred_at order (`facts_from_events` sorts them), then `finish(as_of)`.
    `add` raises services.rules.core.ConflictingDuplicate (and records nothing) for an event_id
    seen before with other content; the same event again changes nothing."""

    def __init__(self, engine: Engine) -> None:
        self.run = VirtualRun(engine)
        self._events: dict[tuple[str, str, str], _Seen] = {}
        self._children: dict[tuple[str, str], _Child] = {}
        self._fired: dict[str, _Fired] = {}
        self._identifications: list[Identification] = []

    def add(self, event: EventBase) -> None:
        if event.agency_id == CANARY_AGENCY:
            return  # canaries are in no count or report (docs/contract.md)
        emitted = self.run.apply(event)
        seen_key = (event.agency_id, event.child_id, event.event_id)
        if seen_key not in self._events:
            self._record(event)
        self._escalations(emitted)

    def finish(self, as_of: datetime) -> Facts:
        """The facts at `as_of` (not before the last event added): the clock is advanced to it,
        so every deadline passed by then has fired its overdue step."""
        self._escalations(self.run.advance(as_of))
        return Facts(
            as_of=as_of,
            episodes=tuple(self._episodes()),
            identifications=tuple(
                sorted(self._identifications, key=lambda i: (i.identified_at, i.child_key))
            ),
            trafficking_reports=tuple(self._trafficking_reports()),
            overdue=tuple(self._overdue()),
            policy_version=self.run.engine.policy.version,
        )

    # --- bookkeeping ---------------------------------------------------------------------

    def _record(self, event: EventBase) -> None:
        payload = getattr(event, "payload", None)
        child = self._children.setdefault((event.agency_id, event.child_id), _Child())
        seen = _Seen(
            event.occurred_at,
            event.jurisdiction.state,
            event.jurisdiction.county,
            event.event_type,
        )
        episode_id = episode_id_of(event)
        if isinstance(payload, PlacementStarted):
            child.placements.append((event.occurred_at, payload.placement_id, payload.setting))
        elif isinstance(payload, PlacementEnded):
            earlier = child.ended.get(payload.placement_id)
            if earlier is None or event.occurred_at < earlier:
                child.ended[payload.placement_id] = event.occurred_at
        elif isinstance(payload, MissingOpened) and episode_id not in child.opened:
            assert episode_id is not None
            child.opened[episode_id] = _Opened(
                event.occurred_at,
                payload.last_seen_at,
                event.jurisdiction.state,
                event.jurisdiction.county,
            )
        elif isinstance(payload, MissingLocated) and episode_id not in child.located:
            assert episode_id is not None
            child.located[episode_id] = (event.occurred_at, payload.located_at)
        elif isinstance(payload, ScreeningCompleted):
            seen.result = payload.result
        elif isinstance(payload, TraffickingIdentified):
            seen.status = payload.status
            self._identifications.append(
                Identification(
                    agency_id=event.agency_id,
                    state=event.jurisdiction.state,
                    county=event.jurisdiction.county,
                    child_key=child_key(event.agency_id, event.child_id),
                    status=payload.status,
                    identified_at=event.occurred_at,
                )
            )
        first_key = (episode_id or "", event.event_type)
        if first_key not in child.first or event.occurred_at < child.first[first_key][0]:
            child.first[first_key] = (event.occurred_at, event.event_id)
        self._events[(event.agency_id, event.child_id, event.event_id)] = seen

    def _escalations(self, emitted: Iterable[Escalation]) -> None:
        for esc in emitted:
            if esc.rule_id not in MEASURED_RULES:
                continue
            if esc.status == "firing":
                if esc.escalation_id in self._fired or not esc.triggered_by:
                    continue
                trigger = esc.triggered_by[0]
                seen = self._events.get((esc.agency_id, esc.child_id, trigger))
                if seen is None:  # not an event of ours: cannot be, the engine fires on events
                    continue
                self._fired[esc.escalation_id] = _Fired(
                    rule_id=esc.rule_id,
                    child=(esc.agency_id, esc.child_id),
                    episode_id=esc.episode_id,
                    due_at=esc.due_at,
                    started_at=seen.at,
                    trigger=trigger,
                )
                continue
            fired = self._fired.get(esc.escalation_id)
            done = esc.evidence.get("discharged_at")
            if fired is None or fired.done_at is not None or not isinstance(done, str):
                continue  # not_owed: not one of the measured duties' ways to end
            fired.done_at = datetime.fromisoformat(done)
            fired.done_by = esc.triggered_by[-1] if esc.triggered_by else None

    # --- facts ---------------------------------------------------------------------------

    def _duty(
        self,
        fired: Mapping[tuple[str, str, str | None, str], _Fired],
        key: tuple[str, str],
        child: _Child,
        episode_id: str,
        rule_id: str,
        started_at: datetime,
    ) -> tuple[Duty, str | None]:
        """The duty and the id of the event that discharged it."""
        found = fired.get((*key, episode_id, rule_id))
        if found is not None:
            return (
                Duty(rule_id, found.started_at, found.due_at, found.done_at),
                found.done_by,
            )
        # Never opened: its discharge came first (or, for a screening, one made for the child
        # without naming an episode).
        early = child.first.get((episode_id, EPISODE_DUTIES[rule_id]))
        if early is None and rule_id == RETURN_SCREENING:
            early = child.first.get(("", EPISODE_DUTIES[rule_id]))
        if early is None:
            return Duty(rule_id, started_at, None, None), None
        return Duty(rule_id, started_at, None, early[0]), early[1]

    def _episodes(self) -> list[EpisodeFacts]:
        fired: dict[tuple[str, str, str | None, str], _Fired] = {}
        for f in sorted(self._fired.values(), key=lambda f: f.started_at, reverse=True):
            fired[(*f.child, f.episode_id, f.rule_id)] = f  # the earliest wins
        out: list[EpisodeFacts] = []
        for key, child in self._children.items():
            state = self.run.states.get(f"{key[0]}:{key[1]}")
            for episode_id, opened in child.opened.items():
                located = child.located.get(episode_id)
                closed_at = located[0] if located else None
                le, _ = self._duty(fired, key, child, episode_id, LAW_ENFORCEMENT, opened.at)
                ncmec, _ = self._duty(fired, key, child, episode_id, NCMEC, opened.at)
                screening = debrief = None
                result: ScreeningResult | None = None
                if closed_at is not None:
                    screening, by = self._duty(
                        fired, key, child, episode_id, RETURN_SCREENING, closed_at
                    )
                    debrief, _ = self._duty(
                        fired, key, child, episode_id, RETURN_DEBRIEF, closed_at
                    )
                    seen = self._events.get((*key, by)) if by is not None else None
                    result = seen.result if seen is not None else None
                out.append(
                    EpisodeFacts(
                        agency_id=key[0],
                        state=opened.state,
                        county=opened.county,
                        child_key=child_key(*key),
                        age_band=_band(state, opened),
                        sex=(state.sex if state is not None else None) or "unknown",
                        setting=_setting(child, opened.last_seen_at),
                        last_seen_at=opened.last_seen_at,
                        opened_at=opened.at,
                        located_at=located[1] if located else None,
                        closed_at=closed_at,
                        law_enforcement=le,
                        ncmec=ncmec,
                        return_screening=screening,
                        return_debrief=debrief,
                        screening_result=result,
                    )
                )
        out.sort(key=lambda e: (e.opened_at, e.child_key))
        return out

    def _trafficking_reports(self) -> list[TraffickingReport]:
        out: list[TraffickingReport] = []
        for f in self._fired.values():
            if f.rule_id != TRAFFICKING_REPORT:
                continue
            seen = self._events[(*f.child, f.trigger)]
            trigger: TraffickingTrigger = seen.status or "clear_concern"
            out.append(
                TraffickingReport(
                    agency_id=f.child[0],
                    state=seen.state,
                    county=seen.county,
                    child_key=child_key(*f.child),
                    trigger=trigger,
                    duty=Duty(f.rule_id, f.started_at, f.due_at, f.done_at),
                )
            )
        out.sort(key=lambda t: (t.duty.started_at, t.child_key))
        return out

    def _overdue(self) -> list[OverdueDuty]:
        out = [
            OverdueDuty(st.agency_id, st.state, st.county, esc.rule_id, esc.due_at)
            for st in self.run.states.values()
            for esc in st.open.values()
            if esc.overdue_id is not None and esc.due_at is not None
        ]
        out.sort(key=lambda o: (o.rule_id, o.due_at, o.state, o.county or ""))
        return out


def _band(state: ChildState | None, opened: _Opened) -> AgeBand:
    if state is None or state.date_of_birth is None:
        return "unknown"
    return age_band(age_on(state.date_of_birth, opened.at, opened.state, opened.county))


def _setting(child: _Child, last_seen_at: datetime) -> str:
    """The placement the child was in when last seen: the latest one started at or before it,
    unless that one had ended before it."""
    current = [(p[0], i) for i, p in enumerate(child.placements) if p[0] <= last_seen_at]
    if not current:
        return NO_PLACEMENT
    started, placement_id, setting = child.placements[max(current)[1]]
    ended = child.ended.get(placement_id)
    if ended is not None and started <= ended < last_seen_at:
        return NO_PLACEMENT
    return setting


def facts_from_events(events: Iterable[EventBase], engine: Engine, as_of: datetime) -> Facts:
    """Facts at `as_of` from the events that occurred by then, applied in occurred_at order
    (stable). Raises ConflictingDuplicate as FactsBuilder.add does."""
    builder = FactsBuilder(engine)
    for event in sorted((e for e in events if e.occurred_at <= as_of), key=_occurred):
        builder.add(event)
    return builder.finish(as_of)


def _occurred(event: EventBase) -> datetime:
    return event.occurred_at
