"""On-call schedules of an agency: who is on call at a given instant. Pure: no clock reads.

A schedule (`schedules:` in `agencies/<agency_id>.yaml`) has rotation layers and overrides, in
its time zone (the agency's unless it names one):

- a rotation layer hands over from one member to the next every `rotation`, starting with the
  first member at `starts`; before `starts` it has nobody. A rotation of a whole number of days
  (`1d`, `7d`, `14d`) hands over at the same local wall-clock time, DST or not (it is counted on
  the local calendar); any other (`12h`, `1d12h`) counts elapsed time from `starts`, so across
  a DST change its handovers move by the hour the clocks did. A handover at a local time the
  clocks skip happens an hour later; at a time they repeat, at the first of the two.
- `restrictions` limit a layer to windows such as weeknights 17:00–08:00 and weekends: a window
  starts on one of its `days` at `start` local time and lasts until `end` (at or before `start`:
  the next day; "24:00": midnight ending that day). Inside a window the member on call is the
  rotation's member at that instant (as PagerDuty has it); outside every window, nobody.
- a layer may instead be an iCalendar feed file (`ical:`, RFC 5545 with recurrence rules,
  services.notify.ical): each event is a shift of the person it names. Where a feed's events
  overlap, the one starting later wins (then the one ending sooner, then the smaller person id).
- a later layer wins over an earlier one where it has someone; an override (a person covers a
  window) wins over every layer, and a later override over an earlier one.
- `fallback_person`: who is on call where no layer or override has anyone (a gap). `policy
  check` refuses a schedule with gaps in the next 28 days unless it names one.

Every interval is half-open, [start, end): at a handover instant, or the instant an override or
window starts, the new person is on call. Config times without an offset are local to the
schedule's zone; the instants asked about are aware datetimes (a naive one is a ValueError).

Who is on call is always asked for a step's scheduled time, never the moment it runs, so a
replay reaches the same person.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from services.common.config import ConfigProblem
from services.common.durations import parse_duration
from services.common.models import Strict
from services.notify.ical import Feed, FeedInvalid, load_feed

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)


class Restriction(Strict):
    """A window a layer is limited to: from `start` to `end` local time (HH:MM; `end` at or
    before `start` ends the next day, "24:00" is midnight), on windows starting on `days`."""

    days: tuple[Weekday, ...] = WEEKDAYS
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class LayerSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    members: tuple[str, ...] = ()  # person ids, in rotation order
    rotation: str | None = None  # e.g. 1d, 7d, 12h
    starts: datetime | None = None  # local time the first member's turn starts
    restrictions: tuple[Restriction, ...] = ()
    ical: str | None = None  # a feed file, relative to the policy directory


class OverrideSpec(Strict):
    person: str
    start: datetime  # local time unless it names an offset
    end: datetime


class ScheduleSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    time_zone: str | None = None  # the agency's unless given
    layers: tuple[LayerSpec, ...] = Field(min_length=1)
    overrides: tuple[OverrideSpec, ...] = ()
    fallback_person: str | None = None


@dataclass(frozen=True)
class Shift:
    """Who is on call from `start` to `end` (UTC-aware), and why: `layer:<name>`, `override`,
    `fallback`, or `gap` (person None: nobody, and no fallback person)."""

    start: datetime
    end: datetime
    person_id: str | None
    source: str


# --- intervals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """`person` on call over [start, end) (UTC) from `source`; where pieces overlap, the
    highest `rank` wins."""

    start: datetime
    end: datetime
    person: str
    source: str
    rank: int


def _flatten(pieces: Iterable[_Piece]) -> list[_Piece]:
    """The pieces as disjoint, sorted intervals, each instant taken by the highest-ranked piece
    covering it; touching intervals of the same person and source joined. A sweep over the
    pieces' ends with a heap of those in force: O(n log n)."""
    ordered = sorted((p for p in pieces if p.start < p.end), key=lambda p: p.start)
    bounds = sorted({p.start for p in ordered} | {p.end for p in ordered})
    active: list[tuple[int, int, _Piece]] = []
    out: list[_Piece] = []
    i = 0
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        while i < len(ordered) and ordered[i].start <= lo:
            heapq.heappush(active, (-ordered[i].rank, i, ordered[i]))
            i += 1
        while active and active[0][2].end <= lo:
            heapq.heappop(active)
        if not active:
            continue
        top = active[0][2]
        last = out[-1] if out else None
        if last and last.end == lo and (last.person, last.source) == (top.person, top.source):
            out[-1] = _Piece(last.start, hi, top.person, top.source, top.rank)
        else:
            out.append(_Piece(lo, hi, top.person, top.source, top.rank))
    return out


def _intersect(
    spans: Sequence[tuple[datetime, datetime, str]], windows: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime, str]]:
    """The parts of sorted, disjoint `spans` inside sorted, disjoint `windows`."""
    out: list[tuple[datetime, datetime, str]] = []
    i = j = 0
    while i < len(spans) and j < len(windows):
        start = max(spans[i][0], windows[j][0])
        end = min(spans[i][1], windows[j][1])
        if start < end:
            out.append((start, end, spans[i][2]))
        if spans[i][1] <= windows[j][1]:
            i += 1
        else:
            j += 1
    return out


def _local(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as a UTC instant (fold 0: a skipped time an hour on, a
    repeated one at its first occurrence)."""
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _wall(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


def _instant(value: datetime, zone: ZoneInfo) -> datetime:
    """A config time: local to `zone` unless it names an offset."""
    return _local(value, zone) if value.tzinfo is None else value.astimezone(UTC)


def _hhmm(text: str) -> timedelta:
    hours, minutes = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


def _windows(
    restrictions: Sequence[Restriction], zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The restrictions' windows overlapping [start, end), clipped, merged and sorted (UTC)."""
    first = _wall(start, zone).date() - _DAY  # a window lasts at most a day
    last = _wall(end, zone).date()
    raw: list[tuple[datetime, datetime]] = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        midnight = datetime.combine(day, time(0))
        for r in restrictions:
            if WEEKDAYS[day.weekday()] not in r.days:
                continue
            opens, closes = _hhmm(r.start), _hhmm(r.end)
            if closes <= opens:
                closes += _DAY
            lo, hi = _local(midnight + opens, zone), _local(midnight + closes, zone)
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                raw.append((lo, hi))
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(raw):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


# --- layers -------------------------------------------------------------------------------------


class _Layer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def restrictions(self) -> tuple[Restriction, ...]: ...

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        """Who the layer (before restrictions) has on call in [start, end): sorted, disjoint,
        clipped to the window."""
        ...


@dataclass(frozen=True)
class _Rotation:
    name: str
    restrictions: tuple[Restriction, ...]
    members: tuple[str, ...]
    rotation: timedelta
    starts: datetime  # the first turn's start, as naive local wall-clock time
    origin: datetime  # ... and as an instant (UTC)
    zone: ZoneInfo

    @property
    def by_calendar(self) -> bool:
        return self.rotation % _DAY == timedelta(0)

    def _handover(self, k: int) -> datetime:
        """The instant turn `k` (0 = the first member's first) starts."""
        if self.by_calendar:
            return _local(self.starts + k * self.rotation, self.zone)
        return self.origin + k * self.rotation

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        if self.by_calendar:
            elapsed = _wall(start, self.zone) - self.starts
        else:
            elapsed = start - self.origin
        # One turn early: a wall-clock time near a DST change may be an hour off its instant.
        k = max(0, elapsed // self.rotation - 1)
        out: list[tuple[datetime, datetime, str]] = []
        turn_start = self._handover(k)
        while turn_start < end:
            turn_end = self._handover(k + 1)
            lo, hi = max(turn_start, start), min(turn_end, end)
            if lo < hi:
                out.append((lo, hi, self.members[k % len(self.members)]))
            k, turn_start = k + 1, turn_end
        return out


@dataclass(frozen=True)
class _FeedLayer:
    name: str
    restrictions: tuple[Restriction, ...]
    feed: Feed

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        # Rank (the last wins): a later start, then an earlier end, then the smaller person id.
        by_person = sorted(self.feed.shifts(start, end), key=lambda s: s.person_id, reverse=True)
        ranked = sorted(by_person, key=lambda s: (s.start, -s.end.timestamp()))
        pieces = [
            _Piece(max(s.start, start), min(s.end, end), s.person_id, "", rank)
            for rank, s in enumerate(ranked)
        ]
        return [(p.start, p.end, p.person) for p in _flatten(pieces)]


def _restricted(
    layer: _Layer, zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, str]]:
    spans = layer.spans(start, end)
    if not layer.restrictions:
        return spans
    return _intersect(spans, _windows(layer.restrictions, zone, start, end))


# --- schedules ----------------------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("an on-call time must be aware (name its offset or zone)")
    return at.astimezone(UTC)


@dataclass(frozen=True, eq=False)
class Schedule:
    """A compiled schedule (built by `compile_schedules`). `index` is its position in the
    agency file's `schedules` list, `named` every person it names (see `people`)."""

    name: str
    zone: ZoneInfo
    fallback_person: str | None
    layers: tuple[_Layer, ...] = ()
    overrides: tuple[tuple[datetime, datetime, str], ...] = ()  # UTC [start, end), person
    index: int = 0
    named: tuple[tuple[str, str], ...] = field(default=())

    def _covered(self, start: datetime, end: datetime) -> list[_Piece]:
        """Who an override or layer has on call in [start, end) (UTC), by precedence."""
        pieces = [
            _Piece(lo, hi, person, f"layer:{layer.name}", j)
            for j, layer in enumerate(self.layers)
            for lo, hi, person in _restricted(layer, self.zone, start, end)
        ]
        pieces += [
            _Piece(max(lo, start), min(hi, end), person, "override", len(self.layers) + k)
            for k, (lo, hi, person) in enumerate(self.overrides)
            if lo < end and hi > start
        ]
        return _flatten(pieces)

    def _at(self, at: datetime) -> _Piece | None:
        instant = _utc(at)
        covered = self._covered(instant, instant + _TICK)
        return covered[0] if covered else None

    def on_call(self, at: datetime) -> str | None:
        """The person an override or layer puts on call at `at` (aware), without the fallback."""
        piece = self._at(at)
        return piece.person if piece else None

    def who(self, at: datetime) -> str | None:
        """The person on call at `at`: `on_call`, else the fallback person."""
        return self.on_call(at) or self.fallback_person

    def shifts(self, start: datetime, end: datetime) -> list[Shift]:
        """Consecutive shifts covering [start, end) (aware) without holes, fallback included (a
        gap without one is a shift of nobody, source `gap`); a person's consecutive turns from
        the same source are one shift. Exact instants; config times are to the minute."""
        lo, hi = _utc(start), _utc(end)
        out: list[Shift] = []

        def add(s: datetime, e: datetime, person: str | None, source: str) -> None:
            if (
                out
                and out[-1].end == s
                and (out[-1].person_id, out[-1].source)
                == (
                    person,
                    source,
                )
            ):
                out[-1] = Shift(out[-1].start, e, person, source)
            elif s < e:
                out.append(Shift(s, e, person, source))

        gap = ("fallback", self.fallback_person) if self.fallback_person else ("gap", None)
        cursor = lo
        for piece in self._covered(lo, hi):
            add(cursor, piece.start, gap[1], gap[0])
            add(piece.start, piece.end, piece.person, piece.source)
            cursor = piece.end
        add(cursor, hi, gap[1], gap[0])
        return out

    def gaps(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Windows in [start, end) where no override or layer has anyone (UTC, sorted)."""
        lo, hi = _utc(start), _utc(end)
        out: list[tuple[datetime, datetime]] = []
        cursor = lo
        for piece in self._covered(lo, hi):
            if cursor < piece.start:
                out.append((cursor, piece.start))
            cursor = piece.end
        if cursor < hi:
            out.append((cursor, hi))
        return out

    def people(self) -> list[tuple[str, str]]:
        """Every person the schedule names, as (path inside the schedule, person id); ical
        layers name theirs by event."""
        return list(self.named)


# --- compiling ----------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _layer(
    spec: LayerSpec,
    zone: ZoneInfo,
    policy_dir: Path,
    file: str,
    path: str,
    problems: list[ConfigProblem],
) -> _Layer | None:
    """One layer compiled, or None with its problems appended."""
    rotating = {
        "members": bool(spec.members),
        "rotation": spec.rotation is not None,
        "starts": spec.starts is not None,
    }
    if spec.ical is not None:
        if any(rotating.values()):
            given = ", ".join(k for k, v in rotating.items() if v)
            problems.append(
                ConfigProblem(
                    file,
                    path,
                    f"has both ical and {given}: a layer is members, rotation and starts, or an"
                    " ical feed",
                )
            )
            return None
        try:
            feed = load_feed(policy_dir / spec.ical, zone)
        except FeedInvalid as exc:
            problems.append(ConfigProblem(file, f"{path}.ical", f"{spec.ical}: {exc.reason}"))
            return None
        return _FeedLayer(spec.name, spec.restrictions, feed)
    missing = [k for k, v in rotating.items() if not v]
    if missing:
        problems.append(
            ConfigProblem(
                file,
                path,
                f"lacks {' and '.join(missing)}: a layer is members, rotation and starts,"
                " or an ical feed",
            )
        )
        return None
    assert spec.rotation is not None and spec.starts is not None  # checked just above
    try:
        rotation = parse_duration(spec.rotation)
    except ValueError:
        rotation = None
    if rotation is None or rotation <= timedelta(0):
        problems.append(
            ConfigProblem(
                file,
                f"{path}.rotation",
                f"{spec.rotation!r} is not a positive duration like 1d, 7d or 12h",
            )
        )
        return None
    origin = _instant(spec.starts, zone)
    return _Rotation(
        spec.name, spec.restrictions, spec.members, rotation, _wall(origin, zone), origin, zone
    )


def _schedule(
    i: int,
    spec: ScheduleSpec,
    agency_zone: ZoneInfo,
    policy_dir: Path,
    file: str,
    problems: list[ConfigProblem],
) -> Schedule:
    where = f"schedules.{i}"
    zone = agency_zone
    if spec.time_zone is not None:
        found = _zone(spec.time_zone)
        if found is None:
            problems.append(
                ConfigProblem(
                    file, f"{where}.time_zone", "not an IANA time zone (e.g. America/Chicago)"
                )
            )
        else:
            zone = found
    layers: list[_Layer] = []
    seen: set[str] = set()
    named: list[tuple[str, str]] = []
    for j, layer_spec in enumerate(spec.layers):
        path = f"layers.{j}"
        if layer_spec.name in seen:
            problems.append(
                ConfigProblem(
                    file, f"{where}.{path}.name", f"duplicate layer name {layer_spec.name!r}"
                )
            )
        seen.add(layer_spec.name)
        layer = _layer(layer_spec, zone, policy_dir, file, f"{where}.{path}", problems)
        if layer is not None:
            layers.append(layer)
        named += [(f"{path}.members.{k}", m) for k, m in enumerate(layer_spec.members)]
        if isinstance(layer, _FeedLayer):
            named += [(f"{path}.ical", person) for person in layer.feed.persons]
    overrides: list[tuple[datetime, datetime, str]] = []
    for k, o in enumerate(spec.overrides):
        start, end = _instant(o.start, zone), _instant(o.end, zone)
        if end <= start:
            problems.append(
                ConfigProblem(file, f"{where}.overrides.{k}.end", "must be after the start")
            )
        else:
            overrides.append((start, end, o.person))
        named.append((f"overrides.{k}.person", o.person))
    if spec.fallback_person is not None:
        named.append(("fallback_person", spec.fallback_person))
    return Schedule(
        name=spec.name,
        zone=zone,
        fallback_person=spec.fallback_person,
        layers=tuple(layers),
        overrides=tuple(overrides),
        index=i,
        named=tuple(named),
    )


def compile_schedules(
    specs: tuple[ScheduleSpec, ...] | list[ScheduleSpec],
    agency_zone: str,
    policy_dir: Path,
    file: str,
    problems: list[ConfigProblem],
) -> dict[str, Schedule]:
    """Compile an agency's schedules; each problem (duplicate schedule or layer name, bad zone,
    a layer with neither members+rotation+starts nor ical or with both, a rotation that is not
    a positive duration, an unreadable or invalid feed, an override not ending after it starts)
    appended naming `file` and `schedules.<i>...`. Never raises for a bad schedule or feed;
    a schedule with problems is still returned, without its broken parts."""
    if not specs:
        return {}
    zone = _zone(agency_zone)
    if zone is None:
        problems.append(
            ConfigProblem(file, "time_zone", "not an IANA time zone (e.g. America/Chicago)")
        )
        zone = ZoneInfo("UTC")
    compiled: dict[str, Schedule] = {}
    for i, spec in enumerate(specs):
        if spec.name in compiled:
            problems.append(
                ConfigProblem(file, f"schedules.{i}.name", f"duplicate schedule name {spec.name!r}")
            )
            continue
        compiled[spec.name] = _schedule(i, spec, zone, policy_dir, file, problems)
    return compiled


def short_local_time(at: datetime, zone: ZoneInfo) -> str:
    """`at` in `zone` to the minute, short, for problems and command output: "Sat 2026-12-05
    17:00 CST" (messages to people use services.notify.wording.local_time)."""
    return at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def gap_problems(
    schedules: Mapping[str, Schedule],
    file: str,
    start: datetime,
    days: int = 28,
) -> list[ConfigProblem]:
    """A problem for each schedule without a fallback person that has a gap in the `days`
    after `start` (aware), naming the first gap in the schedule's local time."""
    problems: list[ConfigProblem] = []
    for schedule in schedules.values():
        if schedule.fallback_person is not None:
            continue
        gaps = schedule.gaps(start, start + timedelta(days=days))
        if not gaps:
            continue
        lo, hi = gaps[0]
        more = f" (and {len(gaps) - 1} more gap(s) in {days} days)" if len(gaps) > 1 else ""
        problems.append(
            ConfigProblem(
                file,
                f"schedules.{schedule.index}",
                f"schedule {schedule.name!r} has nobody on call from"
                f" {short_local_time(lo, schedule.zone)} to {short_local_time(hi, schedule.zone)}"
                f" ({schedule.zone.key}){more}; name a fallback_person or fill the gap",
            )
        )
    return problems
