"""The report's arithmetic: `compute(facts, agency, period_from, period_to, as_of, zone)`.

Pure: no clock, no I/O; every output (json, csv, html, and the console's page) renders the
`Report` it returns. docs/report.md defines each measure; the docstrings here say how.

The period is the agency's local dates `period_from` to `period_to`, both included: the
instants from local midnight starting `period_from` (`start`) to local midnight ending
`period_to` (`end`, excluded). Nothing after `as_of` is known: the period is cut at `as_of`
when it ends later (`cut = min(end, as_of)`), and a duty done after `as_of` counts as not done.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from services.report.facts import (
    AGE_BANDS,
    LAW_ENFORCEMENT,
    MEASURED_RULES,
    NCMEC,
    RETURN_DEBRIEF,
    RETURN_SCREENING,
    SCREENING_RESULTS,
    SETTINGS,
    SEXES,
    TRAFFICKING_STATUSES,
    Duty,
    EpisodeFacts,
    Facts,
)
from services.report.suppression import Relation

Status = Literal["on_time", "late", "overdue", "not_yet_due"]
STATUSES: tuple[Status, ...] = get_args(Status)
STATUS_LABELS: Mapping[str, str] = {
    "on_time": "on time",
    "late": "late",
    "overdue": "not done, past deadline",
    "not_yet_due": "not done, not yet due",
}
ALL = "all"
REPEAT_WINDOW = timedelta(days=365)
"""A repeat run: an episode opened within this long after the child's previous opening (the
engine's "runs in the last 12 months" counts the same 365 days)."""

Key = tuple[str, str, str]
"""A count's identity: (measure, category, row). Two tables showing the same count (the
episodes opened in a county are the law-enforcement table's total) share its key, so it is
suppressed alike wherever it is shown."""


def duty_status(duty: Duty, as_of: datetime) -> Status:
    """What a duty was at `as_of`: done by then, on time if at or before its deadline (a duty
    the engine never opened, because its discharge came first, was done before it began: on
    time); else past its deadline, or not yet due."""
    if duty.done_at is not None and duty.done_at <= as_of:
        return "on_time" if duty.due_at is None or duty.done_at <= duty.due_at else "late"
    if duty.due_at is not None and duty.due_at < as_of:
        return "overdue"
    return "not_yet_due"


def median(values: Sequence[timedelta]) -> timedelta | None:
    """The middle value; for an even count, the mean of the two middle ones."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[timedelta], p: int) -> timedelta | None:
    """The nearest-rank percentile: the smallest value at or above which lie `p` % of values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


@dataclass(frozen=True)
class Stat:
    """Median and 90th percentile over `n` values (None: no values)."""

    n: int
    median: timedelta | None
    p90: timedelta | None

    @classmethod
    def of(cls, values: Sequence[timedelta]) -> Stat:
        return cls(len(values), median(values), percentile(values, 90))


@dataclass(frozen=True)
class Table:
    """A table of counts: `cells[(row id, column id)]` is the key of the count shown there.
    `share_of`: the column holding each row's total, of which every other cell is shown as a
    share (None: no shares)."""

    id: str
    title: str
    note: str
    row_header: str
    rows: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, str], ...]
    cells: Mapping[tuple[str, str], Key]
    share_of: str | None = None
    chart: Literal["shares", "bars", "none"] = "none"


@dataclass(frozen=True)
class StatTable:
    id: str
    title: str
    note: str
    rows: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, str], ...]
    stats: Mapping[tuple[str, str], Stat]


@dataclass(frozen=True)
class Report:
    agency_id: str
    period_from: date
    period_to: date
    zone: str
    start: datetime
    end: datetime
    as_of: datetime
    policy_version: str | None
    counts: Mapping[Key, int]
    relations: tuple[Relation[Key], ...]
    tables: tuple[Table, ...]
    stat_tables: tuple[StatTable, ...]

    def count(self, measure: str, category: str, row: str = ALL) -> int:
        return self.counts[(measure, category, row)]

    def table(self, table_id: str) -> Table:
        return next(t for t in self.tables if t.id == table_id)

    def stat(self, table_id: str, column: str, row: str = ALL) -> Stat:
        found = next(t for t in self.stat_tables if t.id == table_id)
        return found.stats[(row, column)]


SECONDARY = frozenset({"open_at_start", "active"})
COHORTS = frozenset({"opened", "closed", "total", "done", "ran"})


def worth(key: Key) -> int:
    """How much a count is worth showing, for suppression (services.report.suppression): the
    agency's counts over its counties', a cohort (a row's total) over its parts, and the
    episodes open at the start and active below the other agency counts (they are there for
    the sums: active = open at the start + opened = closed + open at the end)."""
    _, category, row = key
    if row == ALL:
        return 5 if category in SECONDARY else 10
    return 2 if category in COHORTS else 1


def scope_of(state: str, county: str | None) -> str:
    """A county's row id: "MO/Jackson", or "MO/" for events that name no county."""
    return f"{state}/{(county or '').strip()}"


def scope_label(scope: str) -> str:
    if scope == ALL:
        return "All counties"
    state, county = scope.split("/", 1)
    return f"{county}, {state}" if county else f"{state} (no county given)"


def period_bounds(period_from: date, period_to: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight starting `period_from` and local midnight ending `period_to`."""
    start = datetime.combine(period_from, time(0), tzinfo=zone)
    end = datetime.combine(period_to + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


@dataclass
class _Counter:
    counts: dict[Key, int] = field(default_factory=dict)

    def zero(self, measure: str, categories: Iterable[str], rows: Iterable[str]) -> None:
        rows = tuple(rows)
        for category in categories:
            for row in rows:
                self.counts.setdefault((measure, category, row), 0)

    def add(self, measure: str, category: str, scope: str | None = None) -> None:
        """One more in the agency's row and, with `scope`, in that county's."""
        for row in (ALL, scope) if scope is not None else (ALL,):
            key = (measure, category, row)
            self.counts[key] = self.counts.get(key, 0) + 1


def compute(
    facts: Facts,
    agency: str,
    period_from: date,
    period_to: date,
    as_of: datetime,
    zone: ZoneInfo,
) -> Report:
    """The report of `agency` for the period (docs/report.md defines each measure).

    Raises ValueError if the period ends before it starts, if `as_of` is before the period
    starts, or if `as_of` is not the instant the facts' overdue duties describe."""
    if period_to < period_from:
        raise ValueError("the period ends before it starts")
    start, end = period_bounds(period_from, period_to, zone)
    if as_of < start:
        raise ValueError("the report date is before the period starts")
    if as_of != facts.as_of:
        raise ValueError("the facts describe another instant than the report date")
    cut = min(end, as_of)

    def within(at: datetime | None) -> bool:
        return at is not None and start <= at < cut

    episodes = [e for e in facts.episodes if e.agency_id == agency]
    identifications = [i for i in facts.identifications if i.agency_id == agency]
    reports = [t for t in facts.trafficking_reports if t.agency_id == agency]
    overdue = [o for o in facts.overdue if o.agency_id == agency and o.due_at < as_of]
    scopes = sorted(
        {scope_of(e.state, e.county) for e in episodes}
        | {scope_of(i.state, i.county) for i in identifications}
        | {scope_of(t.state, t.county) for t in reports}
        | {scope_of(o.state, o.county) for o in overdue}
    )
    rows = (ALL, *scopes)
    c = _Counter()

    # Episodes: open at the start, opened, closed, open at the end (`cut`), active.
    episode_columns = ("open_at_start", "opened", "active", "closed", "open_at_end")
    c.zero("episodes", episode_columns, rows)
    opened: list[EpisodeFacts] = []
    closed: list[EpisodeFacts] = []
    for e in episodes:
        scope = scope_of(e.state, e.county)
        ends = _closed(e)
        if e.opened_at < start and (ends is None or ends >= start):
            c.add("episodes", "open_at_start", scope)
            c.add("episodes", "active", scope)
        if within(e.opened_at):
            c.add("episodes", "opened", scope)
            c.add("episodes", "active", scope)
            opened.append(e)
        if within(ends):
            c.add("episodes", "closed", scope)
            closed.append(e)
        if e.opened_at < cut and (ends is None or ends >= cut):
            c.add("episodes", "open_at_end", scope)

    # Duties: the status of each at as_of, for the episodes opened (reports) or closed
    # (return duties) in the period.
    duty_measures = (
        ("law_enforcement", LAW_ENFORCEMENT, opened),
        ("ncmec", NCMEC, opened),
        ("return_screening", RETURN_SCREENING, closed),
        ("return_debrief", RETURN_DEBRIEF, closed),
    )
    for measure, rule_id, cohort in duty_measures:
        c.zero(measure, STATUSES, rows)
        for e in cohort:
            c.add(
                measure, duty_status(_episode_duty(e, rule_id), as_of), scope_of(e.state, e.county)
            )
    # Screened: the return screenings done (on time or late), the results' total.
    c.zero("return_screening", ("done",), rows)
    for e in closed:
        if duty_status(_episode_duty(e, RETURN_SCREENING), as_of) in ("on_time", "late"):
            c.add("return_screening", "done", scope_of(e.state, e.county))
    c.zero("screening_result", SCREENING_RESULTS, rows)
    for e in closed:
        screening = e.return_screening
        if screening is None or duty_status(screening, as_of) not in ("on_time", "late"):
            continue
        if e.screening_result is None:
            raise ValueError("a screening counted done has no result in the facts")
        c.add("screening_result", e.screening_result, scope_of(e.state, e.county))

    # Trafficking: identifications in the period by status; report duties started in it.
    c.zero("trafficking_identified", (*TRAFFICKING_STATUSES, "total"), rows)
    for i in identifications:
        if within(i.identified_at):
            c.add("trafficking_identified", i.status, scope_of(i.state, i.county))
            c.add("trafficking_identified", "total", scope_of(i.state, i.county))
    c.zero("trafficking_report", (*STATUSES, "total"), rows)
    for t in reports:
        if within(t.duty.started_at):
            scope = scope_of(t.state, t.county)
            c.add("trafficking_report", duty_status(t.duty, as_of), scope)
            c.add("trafficking_report", "total", scope)

    # Who runs: children with an episode opened in the period, repeat runs, breakdowns.
    c.zero("children", ("repeat", "once", "ran"), (ALL,))
    by_child: dict[str, list[datetime]] = {}
    for e in episodes:
        by_child.setdefault(e.child_key, []).append(e.opened_at)
    for times in by_child.values():
        times.sort()
        in_period = [i for i, t in enumerate(times) if within(t)]
        if not in_period:
            continue
        repeat = any(i > 0 and times[i] - times[i - 1] <= REPEAT_WINDOW for i in in_period)
        c.add("children", "repeat" if repeat else "once")
        c.add("children", "ran")
    c.zero("runs_by_setting", SETTINGS, (ALL,))
    c.zero("runs_by_age", AGE_BANDS, (ALL,))
    c.zero("runs_by_sex", SEXES, (ALL,))
    for e in opened:
        c.add("runs_by_setting", e.setting if e.setting in SETTINGS else "other")
        c.add("runs_by_age", e.age_band)
        c.add("runs_by_sex", e.sex if e.sex in SEXES else "unknown")

    # Duties overdue at as_of, by rule (whatever the period).
    rules = sorted(set(MEASURED_RULES) | {o.rule_id for o in overdue}, key=_rule_order)
    c.zero("overdue_now", (*rules, "total"), rows)
    for o in overdue:
        c.add("overdue_now", o.rule_id, scope_of(o.state, o.county))
        c.add("overdue_now", "total", scope_of(o.state, o.county))

    tables = _tables(rows, rules)
    relations = _relations(tables, rows, rules)
    stats = _stats(rows, opened, closed, as_of)
    return Report(
        agency_id=agency,
        period_from=period_from,
        period_to=period_to,
        zone=zone.key,
        start=start,
        end=end,
        as_of=as_of,
        policy_version=facts.policy_version,
        counts=dict(c.counts),
        relations=relations,
        tables=tables,
        stat_tables=stats,
    )


def _closed(e: EpisodeFacts) -> datetime | None:
    """When the episode ends for the counts: the return recorded, or its opening if the return
    was recorded before it (so an episode is never closed before it is open)."""
    return None if e.closed_at is None else max(e.closed_at, e.opened_at)


def _episode_duty(e: EpisodeFacts, rule_id: str) -> Duty:
    duty = {
        LAW_ENFORCEMENT: e.law_enforcement,
        NCMEC: e.ncmec,
        RETURN_SCREENING: e.return_screening,
        RETURN_DEBRIEF: e.return_debrief,
    }[rule_id]
    if duty is None:
        raise ValueError(f"{rule_id}: an episode counted closed has no return duty in the facts")
    return duty


def _rule_order(rule_id: str) -> tuple[int, str]:
    return (MEASURED_RULES.index(rule_id) if rule_id in MEASURED_RULES else len(MEASURED_RULES)), (
        rule_id
    )


def _labels(
    ids: Iterable[str], labels: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    return tuple((i, (labels or {}).get(i, i.replace("_", " "))) for i in ids)


def _scoped(
    measure: str, rows: Sequence[str], columns: Sequence[str]
) -> dict[tuple[str, str], Key]:
    return {(r, col): (measure, col, r) for r in rows for col in columns}


def _tables(rows: Sequence[str], rules: Sequence[str]) -> tuple[Table, ...]:
    row_labels = tuple((r, scope_label(r)) for r in rows)
    status_columns = _labels((*STATUSES, "total"), {**STATUS_LABELS, "total": "total"})

    def duty_table(measure: str, title: str, note: str, total: str) -> Table:
        cells = _scoped(measure, rows, STATUSES)
        cells |= {(r, "total"): ("episodes", total, r) for r in rows}
        return Table(
            measure, title, note, "county", row_labels, status_columns, cells, "total", "shares"
        )

    episodes = Table(
        "episodes",
        "Missing episodes",
        "Open at the start: opened before the period and not closed by its start. Active: open at"
        " the start or opened in the period (= closed + open at the end).",
        "county",
        row_labels,
        _labels(("open_at_start", "opened", "active", "closed", "open_at_end")),
        _scoped("episodes", rows, ("open_at_start", "opened", "active", "closed", "open_at_end")),
    )
    screening_results = Table(
        "screening_result",
        "Return screening results by level",
        "Screenings that discharged the return screening of the episodes closed in the period.",
        "county",
        row_labels,
        _labels((*SCREENING_RESULTS, "total"), {"total": "screened"}),
        _scoped("screening_result", rows, SCREENING_RESULTS)
        | {(r, "total"): ("return_screening", "done", r) for r in rows},
        "total",
        "shares",
    )
    trafficking_identified = Table(
        "trafficking_identified",
        "Trafficking identified",
        "trafficking.identified events in the period, by status.",
        "county",
        row_labels,
        _labels((*TRAFFICKING_STATUSES, "total")),
        _scoped("trafficking_identified", rows, (*TRAFFICKING_STATUSES, "total")),
        "total",
        "shares",
    )
    trafficking_report = Table(
        "trafficking_report",
        "Trafficking reported to law enforcement (within 24 h)",
        "Report duties (federal.trafficking-report) that started in the period: at an"
        " identification or a screening with clear concern.",
        "county",
        row_labels,
        status_columns,
        _scoped("trafficking_report", rows, (*STATUSES, "total")),
        "total",
        "shares",
    )
    children = Table(
        "repeat_runs",
        "Repeat runs",
        "Children with an episode opened in the period; repeat: one of those episodes opened"
        " within 365 days of the child's previous one (2+ episodes in 12 months).",
        "",
        ((ALL, "All counties"),),
        _labels(("repeat", "once", "ran"), {"ran": "children who ran"}),
        _scoped("children", (ALL,), ("repeat", "once", "ran")),
        "ran",
        "shares",
    )

    def breakdown(measure: str, title: str, header: str, categories: Sequence[str]) -> Table:
        cells: dict[tuple[str, str], Key] = {
            (cat, "count"): (measure, cat, ALL) for cat in categories
        }
        cells[("total", "count")] = ("episodes", "opened", ALL)
        return Table(
            measure,
            title,
            "Episodes opened in the period.",
            header,
            _labels((*categories, "total")),
            (("count", "episodes opened"),),
            cells,
            None,
            "bars",
        )

    overdue_cells = {
        (rule, r): ("overdue_now", rule, r) for rule in (*rules, "total") for r in rows
    }
    overdue = Table(
        "overdue_now",
        "Duties overdue at the report date, by rule",
        "Open duties whose deadline had passed at the report date, whatever the period.",
        "rule",
        _labels((*rules, "total"), {r: r for r in rules}),
        row_labels,
        overdue_cells,
        None,
        "bars",
    )
    return (
        episodes,
        duty_table(
            "law_enforcement",
            "Reported to law enforcement",
            "Episodes opened in the period; deadline per jurisdiction (the engine's).",
            "opened",
        ),
        duty_table(
            "ncmec",
            "Reported to NCMEC",
            "Episodes opened in the period; deadline per jurisdiction (the engine's).",
            "opened",
        ),
        duty_table(
            "return_screening",
            "Return screening (trafficking screening after return)",
            "Episodes closed in the period.",
            "closed",
        ),
        screening_results,
        duty_table(
            "return_debrief",
            "Return debrief",
            "Episodes closed in the period.",
            "closed",
        ),
        trafficking_identified,
        trafficking_report,
        children,
        breakdown("runs_by_setting", "Runs by placement setting", "placement setting", SETTINGS),
        breakdown("runs_by_age", "Runs by age band at opening", "age band", AGE_BANDS),
        breakdown("runs_by_sex", "Runs by sex", "sex", SEXES),
        overdue,
    )


def _relations(
    tables: Sequence[Table], rows: Sequence[str], rules: Sequence[str]
) -> tuple[Relation[Key], ...]:
    """Every sum a reader knows (docs/report.md, "Small cells")."""
    counties = [r for r in rows if r != ALL]
    out: list[Relation[Key]] = []

    def across_counties(measure: str, categories: Iterable[str]) -> None:
        for cat in categories:
            out.append(Relation((measure, cat, ALL), tuple((measure, cat, r) for r in counties)))

    across_counties("episodes", ("open_at_start", "opened", "active", "closed", "open_at_end"))
    for r in rows:
        out.append(
            Relation(
                ("episodes", "active", r),
                (("episodes", "open_at_start", r), ("episodes", "opened", r)),
            )
        )
        out.append(
            Relation(
                ("episodes", "active", r),
                (("episodes", "closed", r), ("episodes", "open_at_end", r)),
            )
        )
    for measure, total in (
        ("law_enforcement", "opened"),
        ("ncmec", "opened"),
        ("return_screening", "closed"),
        ("return_debrief", "closed"),
    ):
        across_counties(measure, STATUSES)
        for r in rows:
            out.append(Relation(("episodes", total, r), tuple((measure, s, r) for s in STATUSES)))
    across_counties("return_screening", ("done",))
    across_counties("screening_result", SCREENING_RESULTS)
    for r in rows:
        out.append(
            Relation(
                ("return_screening", "done", r),
                (("return_screening", "on_time", r), ("return_screening", "late", r)),
            )
        )
        out.append(
            Relation(
                ("return_screening", "done", r),
                tuple(("screening_result", s, r) for s in SCREENING_RESULTS),
            )
        )
    across_counties("trafficking_identified", (*TRAFFICKING_STATUSES, "total"))
    across_counties("trafficking_report", (*STATUSES, "total"))
    across_counties("overdue_now", (*rules, "total"))
    for r in rows:
        out.append(
            Relation(
                ("trafficking_identified", "total", r),
                tuple(("trafficking_identified", s, r) for s in TRAFFICKING_STATUSES),
            )
        )
        out.append(
            Relation(
                ("trafficking_report", "total", r),
                tuple(("trafficking_report", s, r) for s in STATUSES),
            )
        )
        out.append(
            Relation(("overdue_now", "total", r), tuple(("overdue_now", x, r) for x in rules))
        )
    out.append(
        Relation(("children", "ran", ALL), (("children", "repeat", ALL), ("children", "once", ALL)))
    )
    for measure, categories in (
        ("runs_by_setting", SETTINGS),
        ("runs_by_age", AGE_BANDS),
        ("runs_by_sex", SEXES),
    ):
        out.append(
            Relation(("episodes", "opened", ALL), tuple((measure, x, ALL) for x in categories))
        )
    known = {key for t in tables for key in t.cells.values()}
    for rel in out:
        for key in rel.members:
            if key not in known:
                raise AssertionError(f"relation names a count no table has: {key}")
    return tuple(r for r in out if r.parts)


def _stats(
    rows: Sequence[str],
    opened: Sequence[EpisodeFacts],
    closed: Sequence[EpisodeFacts],
    as_of: datetime,
) -> tuple[StatTable, ...]:
    def by_row(
        cohort: Sequence[EpisodeFacts], value: Callable[[EpisodeFacts], timedelta | None]
    ) -> dict[str, list[timedelta]]:
        out: dict[str, list[timedelta]] = {r: [] for r in rows}
        for e in cohort:
            v = value(e)
            if v is None:
                continue
            out[ALL].append(v)
            out[scope_of(e.state, e.county)].append(v)
        return out

    def duration(e: EpisodeFacts) -> timedelta | None:
        if e.located_at is None:
            return None
        return max(e.located_at - e.last_seen_at, timedelta(0))

    def time_to(rule_id: str) -> Callable[[EpisodeFacts], timedelta | None]:
        def value(e: EpisodeFacts) -> timedelta | None:
            duty = _episode_duty(e, rule_id)
            if duty.done_at is None or duty.done_at > as_of:
                return None
            return max(duty.done_at - e.opened_at, timedelta(0))

        return value

    columns = (
        ("duration", "missing episode duration (closed in the period)"),
        ("law_enforcement", "time from learning to the law-enforcement report"),
        ("ncmec", "time from learning to the NCMEC report"),
    )
    values = {
        "duration": by_row(closed, duration),
        "law_enforcement": by_row(opened, time_to(LAW_ENFORCEMENT)),
        "ncmec": by_row(opened, time_to(NCMEC)),
    }
    stats = {(r, col): Stat.of(values[col][r]) for r in rows for col, _ in columns}
    return (
        StatTable(
            "times",
            "Durations and times to report",
            "Duration: from last seen to located, for the episodes closed in the period. Time to"
            " report: from the agency learning (the episode's opening) to the report, for the"
            " episodes opened in the period and reported by the report date.",
            tuple((r, scope_label(r)) for r in rows),
            columns,
            stats,
        ),
    )
