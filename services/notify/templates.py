"""What each recipient class may see (docs/domain.md, "Who gets what"); the messages built from it.

Minimisation is enforced here, in Python, before any template runs: `context_for` hands a
template only the fields its audience may receive, so no template edit can leak a field the
audience must never see. Templates live in `<policy dir>/templates/<audience>.txt.j2`; the first
line is `Subject: ...`, the rest is the body.

A body is plain text made of blocks separated by blank lines: paragraphs, and field lists whose
lines read `Label:  value` (two spaces or more after the colon; a longer value goes on in lines
indented to the value's column). `render` wraps lines at 76 characters without ever breaking a
word, so a link always stays whole on one line; `blocks` reads the same structure back, for the
HTML part of an email. The text is the one definition of each message.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from services.common.escalations import Escalation, Subject
from services.notify import wording
from services.notify.agencies import AgencyView, unknown_agency

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

#: Body lines are wrapped to this width (RFC 5322 recommends at most 78 characters).
WIDTH = 76
FIELD = re.compile(r"(?P<label>[A-Z][A-Za-z0-9 '/()-]*):(?P<pad> {2,})(?P<value>\S.*)")
CONTINUATION = re.compile(r" {2,}\S")


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    data: dict[str, Any]  # the minimised context: the JSON body of webhooks


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Fields:
    rows: tuple[tuple[str, str], ...]


Block = Paragraph | Fields


# A duration ("19 d 17 h", "1 h 50 min") stays on one line.
_NUMBER_AND_UNIT = re.compile(r"(?<=\d) (?=(?:d|h|min)\b)|(?<=\d [dh]) (?=\d+ (?:h|min)\b)")
_GLUE = "\u00a0"  # not a space to textwrap; back to a space once wrapped


def wrap(body: str, width: int = WIDTH) -> str:
    """Lines longer than `width` wrapped at spaces: a field's value goes on at its column, other
    lines at their own indentation. A word longer than a line (a link) is never broken: it
    stands whole on a line of its own, or after its field's label; a number stays with its
    unit."""
    out: list[str] = []
    for line in body.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        field = FIELD.fullmatch(line)
        if field:
            head = line[: field.start("value")]
            text, indent = field["value"], " " * len(head)
        else:
            stripped = line.lstrip(" ")
            head = indent = line[: len(line) - len(stripped)]
            text = stripped
        out.extend(
            wrapped.replace(_GLUE, " ")
            for wrapped in textwrap.wrap(
                _NUMBER_AND_UNIT.sub(_GLUE, text),
                width,
                initial_indent=head,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [line]
        )
    return "\n".join(out)


def blocks(body: str) -> list[Block]:
    """A body's paragraphs (wrapped lines joined) and field lists (continuation lines joined to
    their value), in order. A block is a field list when every line is a field or continues
    one; anything else is a paragraph."""
    out: list[Block] = []
    for chunk in re.split(r"\n[ \t]*\n", body.strip("\n")):
        lines = [ln.rstrip() for ln in chunk.split("\n") if ln.strip()]
        if not lines:
            continue
        rows: list[tuple[str, str]] = []
        for line in lines:
            field = FIELD.fullmatch(line)
            if field:
                rows.append((field["label"], field["value"]))
            elif rows and CONTINUATION.match(line):
                label, value = rows[-1]
                rows[-1] = (label, f"{value} {line.strip()}")
            else:
                break
        else:
            out.append(Fields(tuple(rows)))
            continue
        out.append(Paragraph(" ".join(ln.strip() for ln in lines)))
    return out


def age_band(age: object) -> str:
    if not isinstance(age, int) or isinstance(age, bool) or age < 0:
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


def _birth_date(subject: Subject | None) -> date | None:
    if subject is None or not subject.date_of_birth:
        return None
    try:
        return date.fromisoformat(subject.date_of_birth)
    except ValueError:
        return None


def child_age(esc: Escalation, today: date) -> int | None:
    """The child's age in whole years: the engine's (`evidence.age`, on the jurisdiction's date
    when the duty began), else from the date of birth on `today`; None when neither is known."""
    age = esc.evidence.get("age")
    if isinstance(age, int) and not isinstance(age, bool) and age >= 0:
        return age
    born = _birth_date(esc.subject)
    if born is None:
        return None
    years = wording.age_on(born, today)
    return years if years >= 0 else None


def is_overdue(esc: Escalation) -> bool:
    """An overdue step (the engine's `<rule id>.overdue`)."""
    return esc.rule_id.endswith(".overdue")


def _facts(evidence: Mapping[str, Any], zone: ZoneInfo) -> str:
    """`evidence` in words for the caseworker: `risk tier: high; fired at: Tue 24 Nov 2026, ...`;
    times in the agency's zone."""
    return "; ".join(f"{label}: {words}" for label, words in wording.evidence_items(evidence, zone))


def context_for(
    recipient_class: str,
    esc: Escalation,
    *,
    agency: AgencyView,
    ack_url: str | None,
    now: datetime,
    also_told: Sequence[str] = (),
    shelter_photo: bool = False,
) -> dict[str, Any]:
    """The fields `recipient_class` may receive about `esc`, and nothing else. `agency` is the
    escalation's agency (its name, 24/7 number and the zone its people read times in); `now`
    is when the message is made; `also_told` the recipient classes told besides this one.

    Every time is given as an instant (`*_at`, RFC 3339, as before) and, for reading, on the
    agency's wall clock with zone and offset (`*_local`); `due_in` says how long is left (or how
    late it is). An agency without configuration (`agency.known` false) has no name here
    (`agency_name` None): templates say so instead of inventing one."""
    audience = AUDIENCE[recipient_class]
    s = esc.subject
    zone = agency.zone
    age = child_age(esc, now.astimezone(zone).date())
    common: dict[str, Any] = {
        "status": esc.status,
        "agency_contact": agency.contact_24_7,
        "agency_known": agency.known,
    }
    if audience == "shelter":
        # "A youth is missing; if they present, call this number." No foster-care or
        # trafficking status, nothing medical, no rule text or legal basis, and not the
        # agency's name either: a child-welfare agency looking for a youth says foster care.
        first = (s.name.split()[0] if s and s.name and s.name.split() else None) or (
            s.aliases[0] if s and s.aliases else None
        )
        ctx = {
            **common,
            "first_name_or_alias": first or "unknown",
            "age_band": age_band(age),
            "reference": esc.escalation_id[:12],
        }
        if shelter_photo and s and s.photo_url:
            ctx["photo_url"] = s.photo_url
        return ctx

    def local(value: object) -> str | None:
        at = wording.instant(value)
        return wording.local_time(at, zone) if at is not None else None

    overdue = is_overdue(esc)
    firing = esc.status == "firing"
    was_due = wording.instant(esc.evidence.get("was_due_at")) if overdue else None
    duty = esc.action.removeprefix(wording.OVERDUE_PREFIX) if overdue else esc.action
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
        # Plain words: the policy's action as the title; times on the agency's clock.
        "title": wording.title(esc.action, overdue=overdue),
        "duty": duty,
        "overdue": overdue,
        "agency_name": agency.name if agency.known else None,
        "time_zone": agency.time_zone,
        "due_local": local(esc.due_at),
        "due_in": wording.due_in(esc.due_at, now) if esc.due_at and firing else None,
        "was_due_local": local(was_due),
        "overdue_by": wording.overdue_by(was_due, now) if was_due and firing else None,
        "discharged_local": local(esc.evidence.get("discharged_at")),
        "created_local": local(esc.created_at),
    }
    if audience == "law_enforcement":
        # Identification and endangerment only: no case narrative, history or clinical detail.
        # Where (state, county), the age and whom to call are identification too.
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
        ctx["last_seen_local"] = local(s.last_seen_at) if s else None
        ctx["age"] = age
        ctx["state"] = esc.jurisdiction.state
        ctx["county"] = esc.jurisdiction.county
        return ctx
    if audience == "parties":
        # Missing/returned status and dates; never screening results or risk detail.
        ctx["last_seen_at"] = _when(s.last_seen_at) if s else None
        ctx["last_seen_local"] = local(s.last_seen_at) if s else None
        return ctx
    if audience == "provider":
        return ctx
    ctx["basis"] = esc.basis
    ctx["risk_tier"] = esc.evidence.get("risk_tier")
    ctx["also_told"] = wording.recipients_in_words(also_told) or None
    if audience == "management":
        ctx["was_due_at"] = esc.evidence.get("was_due_at")
        return ctx
    # caseworker: everything about the episode.
    ctx["evidence"] = dict(esc.evidence)
    ctx["evidence_words"] = _facts(esc.evidence, zone)
    ctx["subject"] = s.model_dump(mode="json") if s else None
    ctx["last_seen_local"] = local(s.last_seen_at) if s else None
    ctx["age"] = age
    ctx["state"] = esc.jurisdiction.state
    ctx["county"] = esc.jurisdiction.county
    ctx["caseworker_id"] = esc.caseworker_id
    ctx["supervisor_id"] = esc.supervisor_id
    return ctx


def _words(value: object) -> str:
    """A code as words: `medical_need` -> `medical need`."""
    return str(value).replace("_", " ")


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
        self.env.filters["words"] = _words
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
            subject=first.removeprefix("Subject: ").strip(),
            body=wrap(body.strip("\n")) + "\n",
            data=context,
        )


SAMPLE_AGENCY = AgencyView(
    "sample-agency", "Sample County Children's Services", "America/Chicago", "+1-555-0100"
)


def sample_escalation(status: str, *, overdue: bool = False) -> Escalation:
    """An escalation with every field filled, for rendering every template in `policy check`;
    `overdue`: the overdue step of the same duty (no `due_at`, `evidence.was_due_at`)."""
    return Escalation.model_validate(
        {
            "escalation_id": "0" * 32,
            "status": status,
            "rule_id": "federal.report-ncmec" + (".overdue" if overdue else ""),
            "policy_version": "sample",
            "severity": "critical" if overdue else "high",
            "action": ("OVERDUE: " if overdue else "") + "Report the missing child to NCMEC",
            "basis": "42 USC 671(a)(35)(B)",
            "agency_id": "sample-agency",
            "child_id": "C-SAMPLE",
            "episode_id": "E-SAMPLE",
            "jurisdiction": {"state": "MO", "county": "Sample"},
            "recipients": sorted(AUDIENCE),
            "due_at": None if overdue else "2026-01-01T02:00:00Z",
            "evidence": {
                "age": 15,
                "risk_tier": "high",
                "was_due_at": "2026-01-01T01:00:00Z",
                **({"discharged_at": "2026-01-01T03:00:00Z"} if status == "resolved" else {}),
            },
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


def _samples(status: str) -> list[tuple[Escalation, AgencyView]]:
    """The cases every template must render: a duty and its overdue step, for a configured
    agency; a duty of an agency without configuration; one without a subject."""
    esc = sample_escalation(status)
    return [
        (esc, SAMPLE_AGENCY),
        (sample_escalation(status, overdue=True), SAMPLE_AGENCY),
        (esc, unknown_agency("unknown-agency")),
        (esc.model_copy(update={"subject": None, "evidence": {}}), SAMPLE_AGENCY),
    ]


def _wording_problem(esc: Escalation, message: Message) -> str | None:
    """A message that names its rule id where a person reads first."""
    first = message.body.split("\n", 1)[0]
    if esc.rule_id.split(".overdue")[0] in message.subject + "\n" + first:
        return "the subject or first line names the rule id; use the title"
    return None


def render_problems(templates: Templates) -> list[str]:
    """Render every template for every recipient class and both statuses with a full sample
    context (StrictUndefined): a name a template uses but its audience does not get fails here,
    at `policy check`, not at 3 a.m. when a shelter should have been told."""
    problems: list[str] = []
    for status in ("firing", "resolved"):
        for esc, agency in _samples(status):
            for recipient_class in sorted(AUDIENCE):
                context = context_for(
                    recipient_class,
                    esc,
                    agency=agency,
                    ack_url="https://carealert.example.org/ack" if status == "firing" else None,
                    now=esc.created_at,
                    also_told=("caseworker", "supervisor"),
                    shelter_photo=True,
                )
                audience = AUDIENCE[recipient_class]
                where = f"templates/{audience}.txt.j2: {status} for {recipient_class}"
                try:
                    message = templates.render(recipient_class, context)
                except (jinja2.TemplateError, ValueError, TypeError) as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                problem = _wording_problem(esc, message)
                if problem:
                    problems.append(f"{where}: {problem}")
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
