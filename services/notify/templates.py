"""What each recipient class may see (docs/domain.md, "Who gets what"); the messages built from it.

Minimisation is enforced here, in Python, before any template runs: `context_for` hands a
template only the fields its audience may receive, so no template edit can leak a field the
audience must never see. Templates live in `<policy dir>/templates/<audience>.txt.j2`; the first
line is `Subject: ...`, the rest is the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from services.common.escalations import Escalation

AUDIENCE: Mapping[str, str] = {
    "law_enforcement": "law_enforcement",
    "ncmec": "law_enforcement",
    "caseworker": "caseworker",
    "supervisor": "management",
    "director": "management",
    "on_call": "management",
    "court": "parties",
    "guardian_ad_litem": "parties",
    "attorney": "parties",
    "parent": "parties",
    "shelter_network": "shelter",
    "placement_provider": "provider",
}
AUDIENCES = frozenset(AUDIENCE.values())


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    data: dict[str, Any]  # the minimised context: the JSON body of webhooks


def age_band(age: object) -> str:
    if not isinstance(age, int) or isinstance(age, bool):
        return "unknown age"
    if age < 12:
        return "under 12"
    if age < 15:
        return "12-14"
    if age < 18:
        return "15-17"
    return "18 or older"


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def context_for(
    recipient_class: str,
    esc: Escalation,
    *,
    agency_contact: str,
    ack_url: str | None,
    shelter_photo: bool = False,
) -> dict[str, Any]:
    """The fields `recipient_class` may receive about `esc`, and nothing else."""
    audience = AUDIENCE[recipient_class]
    s = esc.subject
    common: dict[str, Any] = {
        "status": esc.status,
        "agency_contact": agency_contact,
    }
    if audience == "shelter":
        # "A youth is missing; if they present, call this number." No foster-care or
        # trafficking status, nothing medical, no rule text or legal basis.
        first = (s.name.split()[0] if s and s.name and s.name.split() else None) or (
            s.aliases[0] if s and s.aliases else None
        )
        ctx = {
            **common,
            "first_name_or_alias": first or "unknown",
            "age_band": age_band(esc.evidence.get("age")),
            "reference": esc.escalation_id[:12],
        }
        if shelter_photo and s and s.photo_url:
            ctx["photo_url"] = s.photo_url
        return ctx
    ctx = {
        **common,
        "escalation_id": esc.escalation_id,
        "rule_id": esc.rule_id,
        "severity": esc.severity,
        "action": esc.action,
        "agency_id": esc.agency_id,
        "child_id": esc.child_id,
        "episode_id": esc.episode_id,
        "due_at": _when(esc.due_at),
        "created_at": _when(esc.created_at),
        "ack_url": ack_url,
    }
    if audience == "law_enforcement":
        # Identification and endangerment only: no case narrative, history or clinical detail.
        ctx["subject"] = (
            {
                "name": s.name,
                "aliases": list(s.aliases),
                "date_of_birth": s.date_of_birth,
                "sex": s.sex,
                "physical_description": s.physical_description,
                "clothing": s.clothing,
                "photo_url": s.photo_url,
                "last_seen_at": _when(s.last_seen_at),
                "last_seen_location": s.last_seen_location,
                "places_frequented": list(s.places_frequented),
                "endangerment": list(s.immediate_risks),
            }
            if s
            else None
        )
        return ctx
    if audience == "parties":
        # Missing/returned status and dates; never screening results or risk detail.
        ctx["last_seen_at"] = _when(s.last_seen_at) if s else None
        return ctx
    if audience == "provider":
        return ctx
    ctx["basis"] = esc.basis
    ctx["risk_tier"] = esc.evidence.get("risk_tier")
    if audience == "management":
        ctx["was_due_at"] = esc.evidence.get("was_due_at")
        return ctx
    # caseworker: everything about the episode.
    ctx["evidence"] = dict(esc.evidence)
    ctx["subject"] = s.model_dump(mode="json") if s else None
    ctx["caseworker_id"] = esc.caseworker_id
    ctx["supervisor_id"] = esc.supervisor_id
    return ctx


class Templates:
    """Jinja2 templates per audience, loaded once; rendering is pure."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self._templates = {a: self.env.get_template(f"{a}.txt.j2") for a in sorted(AUDIENCES)}

    def render(self, recipient_class: str, context: dict[str, Any]) -> Message:
        text = self._templates[AUDIENCE[recipient_class]].render(**context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject: "):
            raise ValueError(
                f"template for {AUDIENCE[recipient_class]} must start with 'Subject: '"
            )
        if not first.isprintable():
            raise ValueError(f"template for {AUDIENCE[recipient_class]}: unprintable subject")
        return Message(
            subject=first.removeprefix("Subject: ").strip(), body=body.lstrip("\n"), data=context
        )


def sample_escalation(status: str) -> Escalation:
    """An escalation with every field filled, for rendering every template in `policy check`."""
    return Escalation.model_validate(
        {
            "escalation_id": "0" * 32,
            "status": status,
            "rule_id": "federal.report-ncmec",
            "policy_version": "sample",
            "severity": "high",
            "action": "Report the missing child to NCMEC",
            "basis": "42 USC 671(a)(35)(B)",
            "agency_id": "sample-agency",
            "child_id": "C-SAMPLE",
            "episode_id": "E-SAMPLE",
            "jurisdiction": {"state": "MO", "county": "Sample"},
            "recipients": sorted(AUDIENCE),
            "due_at": "2026-01-01T02:00:00Z",
            "evidence": {"age": 15, "risk_tier": "high", "was_due_at": "2026-01-01T01:00:00Z"},
            "triggered_by": ["sample-event"],
            "created_at": "2026-01-01T00:00:00Z",
            "caseworker_id": "W-SAMPLE",
            "supervisor_id": "S-SAMPLE",
            "subject": {
                "name": "Sample Youth",
                "aliases": ["Sam"],
                "date_of_birth": "2011-01-01",
                "sex": "female",
                "physical_description": "sample",
                "clothing": "sample",
                "photo_url": "https://example.org/photo.jpg",
                "last_seen_at": "2026-01-01T00:00:00Z",
                "last_seen_location": "sample",
                "places_frequented": ["sample"],
                "immediate_risks": ["medical_need"],
            },
        }
    )


def render_problems(templates: Templates) -> list[str]:
    """Render every template for every recipient class and both statuses with a full sample
    context (StrictUndefined): a name a template uses but its audience does not get fails here,
    at `policy check`, not at 3 a.m. when a shelter should have been told."""
    problems: list[str] = []
    for status in ("firing", "resolved"):
        esc = sample_escalation(status)
        for recipient_class in sorted(AUDIENCE):
            context = context_for(
                recipient_class,
                esc,
                agency_contact="+1-555-0100",
                ack_url="https://carealert.example.org/ack" if status == "firing" else None,
                shelter_photo=True,
            )
            try:
                templates.render(recipient_class, context)
            except (jinja2.TemplateError, ValueError, TypeError) as exc:
                audience = AUDIENCE[recipient_class]
                problems.append(
                    f"templates/{audience}.txt.j2: {status} for {recipient_class}: {exc}"
                )
    return sorted(set(problems))


def check_templates(directory: Path) -> list[str]:
    """Problems with the templates: missing files, syntax errors, a render failure on a sample."""
    problems: list[str] = []
    for audience in sorted(AUDIENCES):
        path = directory / f"{audience}.txt.j2"
        if not path.exists():
            problems.append(f"templates/{audience}.txt.j2: (file): missing")
    if problems:
        return problems
    try:
        templates = Templates(directory)
    except jinja2.TemplateSyntaxError as exc:
        name = Path(exc.filename).name if exc.filename else "?"
        problems.append(f"templates/{name}: line {exc.lineno}: {exc.message}")
        return problems
    return render_problems(templates)
