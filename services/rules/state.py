"""Per-child state: what the rules need to remember about one child, stored as JSON compressed
with a zstd dictionary (services.rules.statecodec) in the faust table (its changelog in Kafka is
the store of record; JSON an earlier release stored is read as it is). `fold(state, event)` is
pure bookkeeping; the decisions are made in core.evaluate.

The state is versioned (`v`). This release writes STATE_VERSION and reads every earlier
version (`from_bytes` upgrades it), so a deploy never dead-letters a child's next event.
Version 1 (no `v`): event ids in a bounded `seen` list. Version 2: digests in buckets
(services.rules.dedup), and the time each fact was last set (latest occurred_at wins).
Version 3: an open escalation keeps `started_at`, the instant its deadline counts from (a
`since: start` resolution needs it); one opened by an earlier release has none, and any
discharging event counts for it, as before. Version 4: bounded by construction (`bound`), and
`forgotten` counts the live duties dropped to stay so; a v3 state is bounded at its next
evaluation.

Bounded: whatever valid events arrive, in whatever order, a child's state holds at most
MAX_EPISODES episodes, the free-text `Subject` on at most MAX_SUBJECTS of them, MAX_OPEN open
escalations, MAX_PENDING rules waiting to fire, MAX_HISTORY runs and placements and
dedup.MAX_DIGESTS digests in dedup.MAX_BUCKETS buckets; every text in it is bounded by the
Event contract or the policy. So its encoding stays under MAX_STATE_BYTES for the shipped policy
(tests/unit/test_state_bounds.py builds the largest state and measures it). Past a bound the
oldest goes first (the newest episode, duty and event are what someone acts on now); see `bound`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from services.common.escalations import Severity, Subject
from services.common.events import (
    ChildProfile,
    EventBase,
    LawEnforcementReported,
    MissingLocated,
    MissingOpened,
    PlacementEnded,
    PlacementStarted,
    TraffickingIdentified,
)
from services.rules import dedup, statecodec
from services.rules.clocks import local_date
from services.rules.dedup import LEGACY, Bucket, from_seen_list
from services.rules.policy import RiskFile

Tier = Literal["standard", "elevated", "high"]
TIERS: tuple[Tier, ...] = ("standard", "elevated", "high")
CONGREGATE = frozenset({"group_home", "institution"})
YEAR = timedelta(days=365)
STATE_VERSION = 4
MOMENT = timedelta(microseconds=1)  # the first instant after a deadline
FOREVER = datetime.max.replace(tzinfo=UTC)
MAX_EPISODES = 16
"""Episodes kept, open and closed: the open first, then the newest (by opened_at)."""
MAX_SUBJECTS = 2
"""Episodes that keep their Subject (up to about 90 kB of free text each), ranked as above:
what law enforcement's and the caseworker's messages about a later step of that episode show."""
MAX_OPEN = 48
MAX_PENDING = 16
MAX_HISTORY = 100
MAX_STATE_BYTES = 512 * 1024
"""The largest a child's state can be encoded (tests/unit/test_state_bounds.py), about half of
what Kafka takes in one record (services.common.dlq.MAX_RECORD_BYTES)."""


def _printable_only(value: Any, keep_lines: bool = False) -> Any:
    """Control and format characters replaced by spaces, recursively (line feeds kept only in
    the one multi-line field, physical_description)."""
    if isinstance(value, str):
        return "".join(c if c.isprintable() or (keep_lines and c == "\n") else " " for c in value)
    if isinstance(value, list):
        return [_printable_only(v) for v in value]
    if isinstance(value, dict):
        return {k: _printable_only(v, k == "physical_description") for k, v in value.items()}
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Episode(Model):
    episode_id: str
    opened_at: datetime
    last_seen_at: datetime
    circumstances: str
    immediate_risks: tuple[str, ...] = ()
    subject: Subject | None = None
    located_at: datetime | None = None
    seen_types: list[str] = []
    # Discharges that arrived before their duty (out of order): rule id → the newest
    # occurred_at of an event that discharges it ("<rule id>|start" for `since: start` ones).
    discharged: dict[str, datetime] = {}

    @property
    def open(self) -> bool:
        return self.located_at is None


class Pending(Model):
    """A rule that fires later unless cancelled (e.g. staffing due 24 h after last seen)."""

    rule_id: str
    scope_key: str
    episode_id: str | None
    fire_at: datetime
    trigger_event_id: str


class OpenEscalation(Model):
    escalation_id: str
    rule_id: str
    scope_key: str
    episode_id: str | None
    severity: Severity
    recipients: tuple[str, ...]
    action: str
    basis: str
    due_at: datetime | None
    evidence: dict[str, Any]
    triggered_by: list[str]
    created_at: datetime
    # The instant the deadline counts from (None: opened by a release before state v3).
    started_at: datetime | None = None
    overdue_id: str | None = None
    overdue_severity: Severity | None = None
    overdue_recipients: tuple[str, ...] = ()
    overdue_action: str | None = None


class ChildState(Model):
    v: int = 1  # absent in state the first release wrote; new states are STATE_VERSION
    agency_id: str
    child_id: str
    state: str
    county: str | None = None
    date_of_birth: date | None = None
    sex: str | None = None
    risk_indicators: tuple[str, ...] = ()
    caseworker_id: str | None = None
    supervisor_id: str | None = None
    placement_id: str | None = None
    setting: str | None = None
    placement_starts: list[datetime] = []
    runs: list[datetime] = []
    episodes: dict[str, Episode] = {}
    open: dict[str, OpenEscalation] = {}
    pending: list[Pending] = []
    risk_tier: Tier = "standard"
    trafficking_status: str | None = None
    # As Episode.discharged, for events that belong to no episode (child-scope duties).
    discharged: dict[str, datetime] = {}
    # Digests of the events applied (services.rules.dedup), by bucket.
    digests: dict[str, Bucket] = {}
    # When the profile, the jurisdiction and the current placement were last set: an event
    # older than that (late, or re-sent) does not set them back.
    profile_at: datetime | None = None
    jurisdiction_at: datetime | None = None
    placement_at: datetime | None = None
    # The Kafka partition the child's events arrive on (set by the worker, used by its timer).
    partition: int | None = None
    # Live duties (an escalation whose overdue step had not fired, a rule waiting to fire)
    # dropped to keep the state bounded, ever (the worker counts the increase in a metric).
    forgotten: int = 0

    @classmethod
    def new(cls, event: EventBase) -> ChildState:
        return cls(
            v=STATE_VERSION,
            agency_id=event.agency_id,
            child_id=event.child_id,
            state=event.jurisdiction.state,
        )

    def to_bytes(self) -> bytes:
        """The state's JSON (what MAX_STATE_BYTES bounds)."""
        return self.model_dump_json(exclude_defaults=True).encode()

    def stored(self) -> tuple[bytes, int]:
        """As the table stores it, the JSON compressed (services.rules.statecodec), and the
        size of that JSON (what a reader decompresses). `from_bytes` reads both forms."""
        plain = self.to_bytes()
        return statecodec.encode(plain), len(plain)

    def stored_bytes(self) -> bytes:
        return self.stored()[0]

    def copy_state(self) -> ChildState:
        """A copy the engine may change without touching `self`: the containers it adds to or
        removes from (episodes, open, pending, discharged, digests) are copied; the episodes,
        escalations, pending rules and buckets in them are shared, and the engine replaces one
        (`own_episode`, `model_copy`) before it changes it. An evaluation so copies what it
        changes, not the whole child."""
        new = self.model_copy()
        new.episodes = dict(self.episodes)
        new.discharged = dict(self.discharged)
        new.open = dict(self.open)
        new.pending = list(self.pending)
        new.digests = dict(self.digests)
        return new

    def own_episode(self, episode_id: str) -> Episode | None:
        """The episode, copied (with its seen_types and discharged) into this state so that it
        may be changed: it may be shared with the state this one was copied from."""
        episode = self.episodes.get(episode_id)
        if episode is None:
            return None
        owned = episode.model_copy(
            update={"seen_types": list(episode.seen_types), "discharged": dict(episode.discharged)}
        )
        self.episodes[episode_id] = owned
        return owned

    @classmethod
    def from_bytes(cls, raw: bytes) -> ChildState:
        """Load stored state of this or any earlier version. State written before the text
        rules were tightened (a line feed or tab in a description) is cleaned on the way in."""
        data = json.loads(statecodec.decode(raw))
        if not isinstance(data, dict):
            raise ValueError("child state is not a JSON object")
        version = data.get("v", 1)
        if not isinstance(version, int) or version > STATE_VERSION:
            raise ValueError(f"child state version {version!r} is newer than this release")
        if version < 2:
            data = _upgrade_from_v1(data)
        data["v"] = STATE_VERSION  # v2 → v3 → v4 only add optional fields (v4 bounds: `bound`)
        try:
            return cls.model_validate(data)
        except ValidationError:
            for episode in (data.get("episodes") or {}).values():
                if isinstance(episode.get("subject"), dict):
                    episode["subject"] = _printable_only(episode["subject"])
            return cls.model_validate(data)

    def age_at(self, when: datetime) -> int | None:
        """Whole years on the jurisdiction's local calendar date at `when`."""
        if self.date_of_birth is None:
            return None
        d, b = local_date(when, self.state, self.county), self.date_of_birth
        return d.year - b.year - ((d.month, d.day) < (b.month, b.day))

    def count_since(self, times: list[datetime], now: datetime) -> int:
        return sum(1 for t in times if now - t <= YEAR)

    def next_deadline(self) -> datetime | None:
        """The earliest time a clock tick could change something for this child: a pending
        rule's firing time, or the first moment after an open duty's deadline."""
        times = [p.fire_at for p in self.pending]
        times += [
            e.due_at + MOMENT
            for e in self.open.values()
            if e.due_at is not None and e.overdue_id is None and e.overdue_severity is not None
        ]
        return min(times) if times else None

    def open_episodes(self) -> set[str]:
        return {k for k, e in self.episodes.items() if e.open}


def _upgrade_from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 → 2: the `seen` list becomes the legacy digest bucket, aged as the newest
    time the state holds; facts carry no time yet (the next event sets them)."""
    data = dict(data)
    seen = data.pop("seen", None) or []
    times = [
        *(data.get("placement_starts") or []),
        *(data.get("runs") or []),
        *(
            t
            for e in (data.get("episodes") or {}).values()
            for t in (e.get("opened_at"), e.get("located_at"))
            if t
        ),
    ]
    times += [
        t
        for e in (data.get("open") or {}).values()
        for t in (e.get("created_at"), e.get("due_at"))
        if t
    ]
    times += [p["fire_at"] for p in data.get("pending") or [] if p.get("fire_at")]
    if seen:
        # Aged as the newest time the state holds (kept for good when it holds none); never
        # dropped while an episode is open (dedup.prune).
        last = max(datetime.fromisoformat(t) for t in times) if times else FOREVER
        data["digests"] = {LEGACY: from_seen_list(seen, last).model_dump(mode="json")}
    data["v"] = STATE_VERSION
    return data


def episode_id_of(event: EventBase) -> str | None:
    payload = event.__dict__.get("payload")
    value = payload.__dict__.get("episode_id") if payload is not None else None
    return value if isinstance(value, str) else None


T = TypeVar("T")


def _bounded(items: list[T], limit: int) -> list[T]:
    return items[-limit:]


def _newer(stamp: datetime | None, when: datetime) -> bool:
    return stamp is None or when >= stamp


def fold(state: ChildState, event: EventBase, history: bool = False) -> None:
    """Record `event` in `state` (mutates it). Events out of order do not fail: a report for an
    episode not yet opened is remembered on a placeholder episode. A fact is only set by an
    event at least as recent as the one that set it last (a late or re-sent event does not
    set it back); placements and runs are counted once whatever arrives twice. A `history`
    event (services.rules.dedup) never creates an episode."""
    payload: Any = getattr(event, "payload", None)
    at = event.occurred_at
    if _newer(state.jurisdiction_at, at):
        state.state = event.jurisdiction.state
        state.county = event.jurisdiction.county
        state.jurisdiction_at = at
    if isinstance(payload, ChildProfile):
        if _newer(state.profile_at, at):
            state.date_of_birth = payload.date_of_birth
            state.sex = payload.sex
            state.risk_indicators = payload.risk_indicators
            state.caseworker_id = payload.caseworker_id or state.caseworker_id
            state.supervisor_id = payload.supervisor_id or state.supervisor_id
            state.profile_at = at
    elif isinstance(payload, PlacementStarted):
        if _newer(state.placement_at, at):
            state.placement_id = payload.placement_id
            state.setting = payload.setting
            state.placement_at = at
        if at not in state.placement_starts:
            state.placement_starts = _bounded(sorted([*state.placement_starts, at]), MAX_HISTORY)
    elif isinstance(payload, PlacementEnded):
        if state.placement_id == payload.placement_id and _newer(state.placement_at, at):
            state.placement_id = None
            state.setting = None
            state.placement_at = at
    elif isinstance(payload, TraffickingIdentified) and not history:
        state.trafficking_status = payload.status

    episode_id = episode_id_of(event)
    if episode_id is None:
        return
    episode = state.own_episode(episode_id)
    if episode is None and history:
        return
    if isinstance(payload, MissingOpened):
        d = payload.description
        subject = Subject(
            name=d.name if d else None,
            aliases=d.aliases if d else (),
            date_of_birth=state.date_of_birth.isoformat() if state.date_of_birth else None,
            sex=state.sex,
            physical_description=d.physical_description if d else None,
            clothing=d.clothing if d else None,
            photo_url=d.photo_url if d else None,
            last_seen_at=payload.last_seen_at,
            last_seen_location=d.last_seen_location if d else None,
            places_frequented=d.places_frequented if d else (),
            immediate_risks=payload.immediate_risks,
        )
        opened = Episode(
            episode_id=episode_id,
            opened_at=event.occurred_at,
            last_seen_at=payload.last_seen_at,
            circumstances=payload.circumstances,
            immediate_risks=payload.immediate_risks,
            subject=subject,
            located_at=episode.located_at if episode else None,
            seen_types=episode.seen_types if episode else [],
            discharged=episode.discharged if episode else {},
        )
        if episode is None and payload.last_seen_at not in state.runs:
            state.runs = _bounded(sorted([*state.runs, payload.last_seen_at]), MAX_HISTORY)
        episode = opened
    elif episode is None:
        # Out of order: remember what arrived so the opening event sees it.
        episode = Episode(
            episode_id=episode_id,
            opened_at=event.occurred_at,
            last_seen_at=event.occurred_at,
            circumstances="unknown",
        )
    if isinstance(payload, MissingLocated):
        episode.located_at = payload.located_at
    if event.event_type not in episode.seen_types:
        episode.seen_types.append(event.event_type)
    state.episodes[episode_id] = episode


def _rank(episode: Episode) -> tuple[bool, datetime, str]:
    """Open before closed, then the newest first (sorted in reverse)."""
    return episode.open, episode.opened_at, episode.episode_id


def _done(esc: OpenEscalation) -> bool:
    """An escalation with no overdue step left to send (already sent, or none: no deadline, or
    due `now`): all it still waits for is the event that resolves it."""
    return esc.overdue_id is not None or esc.due_at is None or esc.overdue_severity is None


def bound(state: ChildState) -> None:
    """Keep `state` within its bounds (mutates it: the engine calls it on its own copy, after
    the escalations of the evaluation are made, so they carry their episode's Subject).

    - Episodes: at most MAX_EPISODES, the open ones first, then the newest. A dropped episode's
      duties stay (open and pending are kept apart); a later event of it starts a placeholder,
      as one that arrives before its episode opens.
    - Subjects: kept on the MAX_SUBJECTS best-ranked episodes that have one, dropped from the
      others: what the engine needs of an episode for deadlines and discharges (times,
      circumstances, immediate risks, seen types, early discharges) stays on every kept one.
    - Open escalations: at most MAX_OPEN; past it, first those with no overdue step left to
      send (only their resolution message is lost, as before), oldest first, then the oldest
      live ones, counted in `forgotten`.
    - Rules waiting to fire: at most MAX_PENDING; past it, the earliest due go, counted in
      `forgotten`.
    - Digests: dedup.bound.
    """
    if len(state.episodes) > MAX_EPISODES:
        ranked = sorted(state.episodes.values(), key=_rank, reverse=True)
        keep = {e.episode_id for e in ranked[:MAX_EPISODES]}
        state.episodes = {k: e for k, e in state.episodes.items() if k in keep}
    with_subject = [e for e in state.episodes.values() if e.subject is not None]
    if len(with_subject) > MAX_SUBJECTS:
        for e in sorted(with_subject, key=_rank, reverse=True)[MAX_SUBJECTS:]:
            state.episodes[e.episode_id] = e.model_copy(update={"subject": None})
    excess = len(state.open) - MAX_OPEN
    if excess > 0:
        order = sorted(
            state.open.values(), key=lambda e: (not _done(e), e.created_at, e.escalation_id)
        )
        for esc in order[:excess]:
            if not _done(esc):
                state.forgotten += 1
            del state.open[esc.escalation_id]
    excess = len(state.pending) - MAX_PENDING
    if excess > 0:
        due_first = sorted(state.pending, key=lambda p: (p.fire_at, p.rule_id, p.scope_key))
        gone = {id(p) for p in due_first[:excess]}
        state.pending = [p for p in state.pending if id(p) not in gone]
        state.forgotten += excess
    dedup.bound(state.digests, state.open_episodes())


def risk_tier(state: ChildState, now: datetime, risk: RiskFile) -> Tier:
    """The child's risk tier from docs/domain.md's factors (never race: it is not in the state)."""
    points = 0
    runs = state.count_since(state.runs, now)
    for threshold, pts in sorted(risk.runs_last_12_months.items(), reverse=True):
        if runs >= threshold:
            points += pts
            break
    if state.setting in CONGREGATE:
        points += risk.congregate_care
    instability = risk.placement_instability
    if state.count_since(state.placement_starts, now) >= instability["min_placements_12_months"]:
        points += instability["points"]
    age = state.age_at(now)
    if age is not None and 12 <= age <= 17:
        points += risk.age_12_to_17
    if state.sex == "female":
        points += risk.female
    for indicator in state.risk_indicators:
        points += risk.risk_indicators.get(indicator, 0)  # type: ignore[call-overload]
    if points >= risk.tiers["high"]:
        return "high"
    if points >= risk.tiers["elevated"]:
        return "elevated"
    return "standard"


def ncic_fields(payload: Any) -> dict[str, bool]:
    if isinstance(payload, LawEnforcementReported):
        return {
            "ncic_entry_confirmed": payload.ncic_entry_confirmed,
            "ncic_declined": payload.ncic_declined,
        }
    return {"ncic_entry_confirmed": False, "ncic_declined": False}
