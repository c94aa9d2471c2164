"""The compliance report in the console (`/report`): the agency's measures for a period
(services.report: the same computation, suppression and charts as `carealert report`), built
from this console's read model (services.report.dbsource) as of now, with links to the same
report as CSV and JSON for analysts. Every view and download is audited first (`report.view`,
`report.download`); the figures are aggregates with small cells suppressed, never a child's."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from services.console.context import HEADERS, Console, Guard, Refused, render
from services.report.dbsource import DatabaseFacts, ReadModelNotReady
from services.report.measures import Report, compute
from services.report.render import meta_line, sections_html, shown, to_csv, to_json

DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_DAYS = 731  # two years: a longer period is a question for `carealert report`


def period_of(request: Request, today: date) -> tuple[date, date]:
    """`from` and `to` (YYYY-MM-DD, both days included) from the query, by default the month so
    far; Refused (422, naming the field) for a bad or reversed one."""
    q = request.query_params
    days: list[date] = []
    for name, default in (("from", today.replace(day=1)), ("to", today)):
        raw = (q.get(name) or "").strip()
        if not raw:
            days.append(default)
            continue
        try:
            if not DAY.fullmatch(raw):
                raise ValueError(name)
            days.append(date.fromisoformat(raw))
        except ValueError:
            raise Refused(422, "Not accepted", f"{name}: a date written YYYY-MM-DD.") from None
    start, end = days
    if end < start:
        raise Refused(422, "Not accepted", "to: the period ends before it starts.")
    if (end - start).days >= MAX_DAYS:
        raise Refused(422, "Not accepted", f"to: at most {MAX_DAYS} days after from.")
    if start > today:
        raise Refused(422, "Not accepted", "from: the period starts after today.")
    return start, min(end, today)


def reports_router(console: Console, guard: Guard) -> APIRouter:
    router = APIRouter()
    source = DatabaseFacts(console.engine)

    async def report_for(request: Request, action: str) -> tuple[Report, str]:
        viewer = guard.viewer(request)
        agency = console.agency(viewer.agency_id)
        now = console.now()
        start, end = period_of(request, now.astimezone(agency.zone).date())
        await guard.audited(viewer.agency_id, viewer.person_id, action, f"{start}..{end}")

        def build() -> Report:
            facts = source.facts(viewer.agency_id, now)
            return compute(facts, viewer.agency_id, start, end, now, agency.zone)

        try:
            report = await asyncio.to_thread(build)
        except ReadModelNotReady:
            raise Refused(
                503,
                "Report not available",
                "The console's database is being rebuilt or upgraded; try again later.",
            ) from None
        query = urlencode({"from": start.isoformat(), "to": end.isoformat()})
        return report, query

    @router.get("/report")
    async def report_page(request: Request) -> Response:
        report, query = await report_for(request, "report.view")
        viewer = guard.viewer(request, touch=False)
        name = console.agency(viewer.agency_id).name
        view = shown(report)
        return render(
            "report.html",
            **guard.base(viewer, "report", "Compliance report"),
            meta=meta_line(report, name),
            body=Markup(sections_html(view)),  # noqa: S704  # built with html.escape throughout
            start=report.period_from.isoformat(),
            end=report.period_to.isoformat(),
            query=query,
        )

    @router.get("/report.csv")
    async def report_csv(request: Request) -> Response:
        report, _ = await report_for(request, "report.download")
        return _download(to_csv(shown(report)), "text/csv; charset=utf-8", report, "csv")

    @router.get("/report.json")
    async def report_json(request: Request) -> Response:
        report, _ = await report_for(request, "report.download")
        viewer = guard.viewer(request, touch=False)
        text = to_json(shown(report), console.agency(viewer.agency_id).name)
        return _download(text, "application/json", report, "json")

    return router


def _download(text: str, media_type: str, report: Report, ext: str) -> Response:
    name = f"carealert-{report.agency_id}-{report.period_from}-{report.period_to}.{ext}"
    return Response(
        text,
        media_type=media_type,
        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )
