"""The report's three outputs from one `Report`: JSON, CSV (long: one line per cell) and a
self-contained printable HTML page with its charts as inline SVG (no script, no external file).

Every output shows a count only if suppression left it visible (`<5` and `*` otherwise), a share
only if both the count and its row's total are visible, and a statistic only over enough values
(services.report.suppression). Nothing about a child is in a Report, so nothing is here either.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any, Literal

from services.notify import wording
from services.report.measures import ALL, Key, Report, Stat, StatTable, Table, worth
from services.report.suppression import (
    COMPLEMENTARY,
    MIN_FOR_MEDIAN,
    MIN_FOR_P90,
    PRIMARY,
    Mark,
    suppress,
)

Format = Literal["json", "csv", "html"]
FORMATS: tuple[Format, ...] = ("html", "csv", "json")
TITLE = "Missing from care: compliance and trends"
SUPPRESSION_RULE = (
    "Counts of 1 to 4 are shown as <5. Where a <5 could then be worked out from a total (a"
    " total minus the other cells, across rows, columns and the tables that show the same"
    " count), more cells are hidden as * (any value, 0 included) until none can. Zeros are"
    " shown. A share is shown only when its count and its total are. A median needs at least"
    f" {MIN_FOR_MEDIAN} values, a 90th percentile at least {MIN_FOR_P90}."
)
MARKS: Mapping[str, str] = {
    PRIMARY: "a count of 1 to 4",
    COMPLEMENTARY: "hidden so that a <5 cannot be worked out from the totals",
    f"n<{MIN_FOR_MEDIAN}": f"fewer than {MIN_FOR_MEDIAN} values: not shown",
    f"n<{MIN_FOR_P90}": f"fewer than {MIN_FOR_P90} values: not shown",
}


@dataclass(frozen=True)
class Shown:
    """A Report with its suppression: what each output may show."""

    report: Report
    marks: Mapping[Key, Mark]

    def value(self, key: Key) -> int | None:
        return None if key in self.marks else self.report.counts[key]

    def display(self, key: Key) -> str:
        mark = self.marks.get(key)
        return mark if mark is not None else str(self.report.counts[key])

    def share(self, table: Table, row: str, column: str) -> float | None:
        """The cell as a share of its row's total (None: no shares here, or either hidden)."""
        if table.share_of is None or column == table.share_of:
            return None
        part = self.value(table.cells[(row, column)])
        total = self.value(table.cells[(row, table.share_of)])
        if part is None or not total:
            return None
        return part / total


def shown(report: Report) -> Shown:
    return Shown(report, suppress(report.counts, report.relations, worth))


def render(report: Report, fmt: Format, agency_name: str | None = None) -> str:
    """The report in `fmt`. Raises SuppressionFailed rather than show a recoverable cell."""
    view = shown(report)
    if fmt == "json":
        return to_json(view, agency_name)
    if fmt == "csv":
        return to_csv(view)
    return to_html(view, agency_name)


# --- statistics ----------------------------------------------------------------------------


def hours(delta: timedelta | None) -> float | None:
    return None if delta is None else round(delta.total_seconds() / 3600, 2)


def stat_values(stat: Stat) -> dict[str, float | str | None]:
    """Median and 90th percentile in hours, or None with the reason in `*_display`."""
    out: dict[str, float | str | None] = {}
    for name, value, need in (
        ("median", stat.median, MIN_FOR_MEDIAN),
        ("p90", stat.p90, MIN_FOR_P90),
    ):
        if stat.n == 0:
            out[f"{name}_hours"], out[f"{name}_display"] = None, "none"
        elif stat.n < need:
            out[f"{name}_hours"], out[f"{name}_display"] = None, f"n<{need}"
        else:
            out[f"{name}_hours"], out[f"{name}_display"] = hours(value), _span(value)
    return out


def _span(delta: timedelta | None) -> str:
    """A duration as people read it: 45 min, 2 h 30 min, 3 d 4 h (services.notify.wording)."""
    if delta is None:
        return "none"
    return wording.duration(max(delta, timedelta(0)))


# --- JSON ----------------------------------------------------------------------------------


def _meta(report: Report, agency_name: str | None) -> dict[str, Any]:
    local = report.as_of.astimezone(report.start.tzinfo)
    return {
        "report": TITLE,
        "agency_id": report.agency_id,
        **({"agency_name": agency_name} if agency_name else {}),
        "period": {
            "from": report.period_from.isoformat(),
            "to": report.period_to.isoformat(),
            "time_zone": report.zone,
            "start": report.start.isoformat(),
            "end": report.end.isoformat(),
        },
        "as_of": local.isoformat(),
        "policy_version": report.policy_version,
    }


def _table_json(view: Shown, table: Table) -> dict[str, Any]:
    rows = []
    for row, label in table.rows:
        cells = {}
        for column, _ in table.columns:
            key = table.cells[(row, column)]
            share = view.share(table, row, column)
            cells[column] = {
                "value": view.value(key),
                "display": view.display(key),
                "share": None if share is None else round(share, 6),
            }
        rows.append({"id": row, "label": label, "cells": cells})
    return {
        "id": table.id,
        "title": table.title,
        "note": table.note,
        "row_header": table.row_header,
        "columns": [{"id": c, "label": label} for c, label in table.columns],
        "rows": rows,
    }


def _stats_json(table: StatTable) -> dict[str, Any]:
    return {
        "id": table.id,
        "title": table.title,
        "note": table.note,
        "columns": [{"id": c, "label": label} for c, label in table.columns],
        "rows": [
            {
                "id": row,
                "label": label,
                "cells": {c: stat_values(table.stats[(row, c)]) for c, _ in table.columns},
            }
            for row, label in table.rows
        ],
    }


def to_json(view: Shown, agency_name: str | None = None) -> str:
    doc = {
        **_meta(view.report, agency_name),
        "suppression": {"rule": SUPPRESSION_RULE, "marks": dict(MARKS)},
        "tables": [_table_json(view, t) for t in view.report.tables],
        "statistics": [_stats_json(t) for t in view.report.stat_tables],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --- CSV -----------------------------------------------------------------------------------

CSV_HEADER = ("table", "row", "column", "value", "share_percent")


def to_csv(view: Shown) -> str:
    """One line per cell: `value` as shown (a number, <5 or *), `share_percent` where a share
    is shown. The report's facts first (table "report"), the statistics in hours last."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    meta = _meta(view.report, None)
    for name in ("agency_id", "as_of", "policy_version"):
        writer.writerow(("report", name, "", meta[name] or "", ""))
    for name in ("from", "to", "time_zone", "start", "end"):
        writer.writerow(("report", f"period_{name}", "", meta["period"][name], ""))
    for table in view.report.tables:
        for row, _ in table.rows:
            for column, _ in table.columns:
                share = view.share(table, row, column)
                writer.writerow(
                    (
                        table.id,
                        row,
                        column,
                        view.display(table.cells[(row, column)]),
                        "" if share is None else f"{100 * share:.1f}",
                    )
                )
    for stats in view.report.stat_tables:
        for row, _ in stats.rows:
            for column, _ in stats.columns:
                values = stat_values(stats.stats[(row, column)])
                for name in ("median", "p90"):
                    number = values[f"{name}_hours"]
                    shown_value = values[f"{name}_display"] if number is None else number
                    writer.writerow((stats.id, row, f"{column}_{name}_hours", shown_value, ""))
    return out.getvalue()


# --- HTML ----------------------------------------------------------------------------------

COLOURS: Mapping[str, str] = {
    "on_time": "#2e7d32",
    "late": "#ef8f00",
    "overdue": "#c62828",
    "not_yet_due": "#90a4ae",
    "no_concern": "#2e7d32",
    "possible_concern": "#ef8f00",
    "clear_concern": "#c62828",
    "suspected": "#ef8f00",
    "confirmed": "#c62828",
    "repeat": "#c62828",
    "once": "#5c6bc0",
}
DEFAULT_COLOUR = "#3f51b5"
HIDDEN = "#bdbdbd"
BAR_WIDTH = 560
LABEL_WIDTH = 210

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121;
  margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .3rem; border-bottom: 1px solid #ccc; }
p.note, p.meta { color: #555; margin: .2rem 0 .6rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f5f5f5; }
td .share { color: #666; font-size: .85em; }
section { break-inside: avoid; page-break-inside: avoid; }
dl.marks dt { font-weight: bold; float: left; width: 4rem; }
dl.marks dd { margin-left: 4.5rem; }
svg text { font: 12px system-ui, sans-serif; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } }
@page { margin: 1.5cm; }
"""


def _colour(column: str) -> str:
    return COLOURS.get(column, DEFAULT_COLOUR)


def _hatch(pattern_id: str) -> str:
    return (
        f'<defs><pattern id="{pattern_id}" width="6" height="6" patternUnits="userSpaceOnUse"'
        ' patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="#eeeeee"/><rect width="3" height="6" fill="{HIDDEN}"/>'
        "</pattern></defs>"
    )


def share_chart(view: Shown, table: Table) -> str:
    """One stacked bar per row whose total is shown and not zero: each shown cell at its share,
    the hidden ones together as one hatched segment (their sum is the total minus the shown)."""
    assert table.share_of is not None
    parts = [c for c, _ in table.columns if c != table.share_of]
    labels = dict(table.columns)
    bars: list[str] = []
    y = 0
    pattern = f"hidden-{table.id}"
    for row, label in table.rows:
        total = view.value(table.cells[(row, table.share_of)])
        if not total:
            continue
        x = 0.0
        segments: list[str] = []
        hidden_share = 1.0
        for column in parts:
            share = view.share(table, row, column)
            if share is None:
                continue
            hidden_share -= share
            width = share * BAR_WIDTH
            if width > 0:
                tip = f"{labels[column]}: {100 * share:.1f} %"
                segments.append(
                    f'<rect x="{LABEL_WIDTH + x:.2f}" y="{y}" width="{width:.2f}" height="18"'
                    f' fill="{_colour(column)}"><title>{escape(tip)}</title></rect>'
                )
                if width >= 34:
                    segments.append(
                        f'<text x="{LABEL_WIDTH + x + width / 2:.2f}" y="{y + 13}"'
                        f' text-anchor="middle" fill="#fff">{100 * share:.0f}%</text>'
                    )
            x += width
        if hidden_share > 1e-9:
            segments.append(
                f'<rect x="{LABEL_WIDTH + x:.2f}" y="{y}" width="{hidden_share * BAR_WIDTH:.2f}"'
                f' height="18" fill="url(#{pattern})"><title>hidden (small numbers)</title></rect>'
            )
        bars.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            + "".join(segments)
        )
        y += 24
    if not bars:
        return '<p class="note">No chart: no total here is shown and above zero.</p>'
    legend = []
    x = LABEL_WIDTH
    for column in [*parts, "hidden"]:
        text = "hidden" if column == "hidden" else labels[column]
        fill = f"url(#{pattern})" if column == "hidden" else _colour(column)
        legend.append(
            f'<rect x="{x}" y="{y + 4}" width="12" height="12" fill="{fill}"/>'
            f'<text x="{x + 16}" y="{y + 14}">{escape(text)}</text>'
        )
        x += 24 + 7 * len(text)
    height = y + 24
    return (
        f'<svg role="img" aria-label="{escape(table.title)}" width="{LABEL_WIDTH + BAR_WIDTH + 10}"'
        f' height="{height}" viewBox="0 0 {LABEL_WIDTH + BAR_WIDTH + 10} {height}"'
        f' xmlns="http://www.w3.org/2000/svg">{_hatch(pattern)}{"".join(bars)}{"".join(legend)}'
        "</svg>"
    )


def bar_chart(view: Shown, table: Table) -> str:
    """One bar per category (the agency's column), the total left out: a shown count at its
    length, a hidden one as a short hatched stub with its mark."""
    column = ALL if (table.rows[0][0], ALL) in table.cells else table.columns[0][0]
    rows = [(r, label) for r, label in table.rows if r != "total"]
    values = [view.value(table.cells[(r, column)]) for r, _ in rows]
    top = max((v for v in values if v is not None), default=0) or 1
    pattern = f"hidden-{table.id}"
    parts: list[str] = []
    y = 0
    for (row, label), value in zip(rows, values, strict=True):
        key = table.cells[(row, column)]
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
        )
        if value is None:
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="14" height="18" fill="url(#{pattern})"/>'
                f'<text x="{LABEL_WIDTH + 20}" y="{y + 13}">{escape(view.display(key))}</text>'
            )
        else:
            width = value / top * BAR_WIDTH
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.2f}" height="18"'
                f' fill="{DEFAULT_COLOUR}"/>'
                f'<text x="{LABEL_WIDTH + width + 6:.2f}" y="{y + 13}">{value}</text>'
            )
        y += 24
    width = LABEL_WIDTH + BAR_WIDTH + 60
    return (
        f'<svg role="img" aria-label="{escape(table.title)}" width="{width}" height="{y}"'
        f' viewBox="0 0 {width} {y}" xmlns="http://www.w3.org/2000/svg">{_hatch(pattern)}'
        f"{''.join(parts)}</svg>"
    )


def _table_html(view: Shown, table: Table) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in table.columns)
    body = []
    for row, label in table.rows:
        cells = []
        for column, _ in table.columns:
            text = escape(view.display(table.cells[(row, column)]))
            share = view.share(table, row, column)
            if share is not None:
                text += f' <span class="share">({100 * share:.1f} %)</span>'
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr><th scope=row>{escape(label)}</th>{''.join(cells)}</tr>")
    return (
        f"<table><thead><tr><th>{escape(table.row_header)}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _stats_html(table: StatTable) -> str:
    head = "".join(
        f"<th>{escape(label)}: median</th><th>90th percentile</th>" for _, label in table.columns
    )
    body = []
    for row, label in table.rows:
        cells = []
        for column, _ in table.columns:
            values = stat_values(table.stats[(row, column)])
            cells.append(
                f"<td>{escape(str(values['median_display']))}</td>"
                f"<td>{escape(str(values['p90_display']))}</td>"
            )
        body.append(f"<tr><th scope=row>{escape(label)}</th>{''.join(cells)}</tr>")
    return (
        f"<table><thead><tr><th>county</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _local(at: datetime, report: Report) -> str:
    return at.astimezone(report.start.tzinfo).strftime("%Y-%m-%d %H:%M %Z")


def sections_html(view: Shown) -> str:
    """The report's body without a page around it: how to read it, then each table with its
    chart (inline SVG, no script, no style attribute: the console shows it under a policy that
    allows neither inline script nor inline style; its classes are styled by CSS)."""
    report = view.report
    sections: list[str] = []
    for table in report.tables:
        chart = ""
        if table.chart == "shares":
            chart = share_chart(view, table)
        elif table.chart == "bars":
            chart = bar_chart(view, table)
        sections.append(
            f"<section id={escape(table.id)}><h2>{escape(table.title)}</h2>"
            f'<p class="note">{escape(table.note)}</p>{chart}{_table_html(view, table)}</section>'
        )
    for stats in report.stat_tables:
        sections.append(
            f"<section id={escape(stats.id)}><h2>{escape(stats.title)}</h2>"
            f'<p class="note">{escape(stats.note)}</p>{_stats_html(stats)}</section>'
        )
    marks = "".join(f"<dt>{escape(m)}</dt><dd>{escape(t)}</dd>" for m, t in MARKS.items())
    return (
        "<section id=reading><h2>How to read this report</h2>"
        '<p class="note">On time: done at or before the deadline of the jurisdiction the episode'
        " is in (a report exactly at the deadline is on time). Late: done after it, by the report"
        " date. Not done, past deadline: not done by the report date (never, so far). Not done,"
        " not yet due: the deadline is after the report date. Definitions: docs/report.md.</p>"
        f'<p class="note">{escape(SUPPRESSION_RULE)}</p><dl class="marks">{marks}</dl></section>'
        f"{''.join(sections)}"
    )


def meta_line(report: Report, agency_name: str | None = None) -> str:
    """`Agency (id) · period 2026-11-01 to 2026-11-30 (America/Chicago) · as of ...`, plain."""
    who = f"{agency_name} ({report.agency_id})" if agency_name else report.agency_id
    line = (
        f"{who} · period {report.period_from.isoformat()} to {report.period_to.isoformat()}"
        f" ({report.zone}) · as of {_local(report.as_of, report)}"
    )
    return line + (f" · policy {report.policy_version[:12]}" if report.policy_version else "")


def to_html(view: Shown, agency_name: str | None = None) -> str:
    """A self-contained printable page: the report's body, its CSS inline, nothing else."""
    report = view.report
    who = f"{agency_name} ({report.agency_id})" if agency_name else report.agency_id
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(TITLE)}: {escape(who)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(TITLE)}</h1>"
        f'<p class="meta">{escape(meta_line(report, agency_name))}</p>'
        f"{sections_html(view)}</body></html>\n"
    )
