"""The routing files: `routing.yaml` (the shared tree and the receivers every agency shares) and
one `agencies/<agency_id>.yaml` per agency (services.notify.agencies); their models, each
channel's settings beside its sender (services.notify.channels), and the cross-reference pass
that compiles them into the routing tree (services.notify.routing).

`load_routing(path)` parses strictly, then cross-checks (unknown receiver, another agency's
receiver, a receiver the shared tree names that an agency lacks, unknown recipient class or
severity in a matcher, unreachable route), raising `RoutingInvalid` with every problem as
"file: path: reason". References to people are checked against the people registry by
services.notify.tenancy.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator

from services.common import yamlio
from services.common.config import ConfigInvalid, ConfigProblem
from services.common.durations import parse_duration
from services.common.escalations import RECIPIENT_CLASSES
from services.common.events import AgencyId
from services.common.models import Strict
from services.common.people import Role, read_entries
from services.notify.acks import CONSOLE_RECEIVER
from services.notify.agencies import DEFAULT_ACK_ROLES, AckRole, AgencyView
from services.notify.channels.email import EmailTarget
from services.notify.channels.sms import SmsTarget
from services.notify.channels.webhook import WebhookTarget
from services.notify.oncall import ScheduleSpec, compile_schedules
from services.notify.routing import (
    KNOWN_VALUES,
    LABELS,
    Agency,
    EscalationPolicy,
    Level,
    Reach,
    Route,
    Routing,
)

M = TypeVar("M", bound=BaseModel)


# A receiver's name as declared, and as a plan may hold it: declared, or made by an escalation
# level for a person, role or schedule (`person:W-1`, `schedule:on-call`).
RECEIVER_NAME = r"^[a-z0-9][a-z0-9_-]*$"
PLANNED_RECEIVER = r"^[a-z0-9][a-z0-9_-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)?$"


class ReceiverSpec(Strict):
    name: str = Field(pattern=RECEIVER_NAME)
    shared: bool = False  # routing.yaml: serves every agency (a state police intake, NCMEC)
    email: EmailTarget | None = None
    webhook: WebhookTarget | None = None
    sms: SmsTarget | None = None
    # Where its messages go during a maintenance window on it (services.notify.silences).
    fallback_receiver: str | None = None


class LevelTarget(Strict):
    """Whom one escalation level tells: exactly one of a receiver (the agency's own or a shared
    one), a person by id, the agency's first person with a role, or whoever a schedule puts on
    call; people are written to by email (name an SMS receiver for SMS). `recipient_class`:
    what they are shown (default: a schedule's `on_call`, a role's own class, else
    `supervisor`: deadlines and escalations, no narrative)."""

    receiver: str | None = None
    person: str | None = None
    role: Role | None = None
    schedule: str | None = None
    # Levels reach the agency's staff: never a class kept from findings (parents, courts).
    recipient_class: Literal["caseworker", "supervisor", "director", "on_call"] | None = None


class LevelSpec(Strict):
    notify: tuple[LevelTarget, ...] = Field(min_length=1)
    wait: str = "1h"  # before the next level, if nobody has acknowledged


class EscalationPolicySpec(Strict):
    """Ordered levels after the first notification: level 1 when the route's ack timeout has
    passed unacknowledged, each next one after the level before's `wait`; then all levels again,
    `repeat` times."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    levels: tuple[LevelSpec, ...] = Field(min_length=1, max_length=10)
    repeat: int = Field(default=0, ge=0, le=5)


class RouteSpec(Strict):
    receiver: str | None = None
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    continue_: bool = Field(default=False, alias="continue")
    repeat_interval: str | None = None
    ack_timeout: str | None = None
    send_resolved: bool | None = None
    escalation_policy: str | None = None  # agency files only: one of its escalation_policies
    digest: str | None = None  # e.g. 1h: notifications that are no duty, gathered (inherited)
    routes: list[RouteSpec] = []


class Defaults(Strict):
    repeat_interval: str = "4h"
    ack_timeout: str = "1h"
    send_resolved: bool = True
    max_reminders: int = Field(default=6, ge=0, le=100)


class RoutingFile(Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    shelter_photo: bool = False
    operator_receiver: str | None = None  # a shared receiver paged about unknown agencies
    receivers: list[ReceiverSpec]
    route: RouteSpec
    # Moved out of policy files: refused with a problem saying where they live now.
    staff: dict[str, Any] | None = None
    agency_contact: dict[str, Any] | None = None


class AgencyFile(Strict):
    """`agencies/<agency_id>.yaml`: one tenant (services.notify.agencies)."""

    version: Literal[1]
    agency_id: AgencyId
    name: str = Field(min_length=1, max_length=120)
    time_zone: str
    locale: str = Field(default="en-US", pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")
    contact_24_7: str = Field(min_length=3, max_length=120)
    acknowledge_roles: tuple[AckRole, ...] = DEFAULT_ACK_ROLES
    receivers: list[ReceiverSpec] = []
    routes: list[RouteSpec] = []
    schedules: list[ScheduleSpec] = []  # on-call rotations (services.notify.oncall)
    escalation_policies: list[EscalationPolicySpec] = []
    escalation_policy: str | None = None  # the agency's default; else the staff ladder
    # Where a silenced notification of a duty goes instead (services.notify.silences).
    fallback_receiver: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone (e.g. America/Chicago)") from None
        return value


RoutingProblem = ConfigProblem


class RoutingInvalid(ConfigInvalid):
    """routing.yaml can not be used; `problems` lists every one."""


def _duration(text: str, file: str, path: str, problems: list[RoutingProblem]) -> timedelta:
    try:
        d = parse_duration(text)
    except ValueError as exc:
        problems.append(RoutingProblem(file, path, str(exc)))
        return timedelta(hours=1)
    if d is None or d.total_seconds() <= 0:
        problems.append(RoutingProblem(file, path, f"{text!r} must be a positive duration"))
        return timedelta(hours=1)
    return d


def _digest(text: str, file: str, path: str, problems: list[RoutingProblem]) -> timedelta:
    every = _duration(text, file, path, problems)
    if not timedelta(minutes=1) <= every <= timedelta(days=1):
        problems.append(RoutingProblem(file, path, "a digest interval is 1m to 1d"))
    return every


ReceiverCheck = Callable[[str], str | None]  # a receiver name → why it may not be used, or None


def _compile(
    spec: RouteSpec,
    path: str,
    parent: Route | None,
    defaults: Defaults,
    receiver_problem: ReceiverCheck,
    file: str,
    problems: list[RoutingProblem],
) -> Route:
    receiver = spec.receiver or (parent.receiver if parent else "")
    if not receiver:
        problems.append(RoutingProblem(file, f"{path}.receiver", "the root route needs a receiver"))
    elif spec.receiver and (why := receiver_problem(receiver)):
        problems.append(RoutingProblem(file, f"{path}.receiver", why))
    for kind, matchers in (("match", spec.match), ("match_re", spec.match_re)):
        for label, value in matchers.items():
            where = f"{path}.{kind}.{label}"
            if label not in LABELS:
                problems.append(
                    RoutingProblem(
                        file, where, f"unknown label {label!r} (labels: {', '.join(LABELS)})"
                    )
                )
            elif kind == "match" and label in KNOWN_VALUES and value not in KNOWN_VALUES[label]:
                problems.append(
                    RoutingProblem(
                        file, where, f"{value!r} is not a known {label.replace('_', ' ')}"
                    )
                )
    match_re: dict[str, re.Pattern[str]] = {}
    for label, rx in spec.match_re.items():
        try:
            match_re[label] = re.compile(rx)
        except re.error as exc:
            problems.append(RoutingProblem(file, f"{path}.match_re.{label}", f"bad regex: {exc}"))
    repeat = spec.repeat_interval or (None if parent else defaults.repeat_interval)
    ack = spec.ack_timeout or (None if parent else defaults.ack_timeout)
    node = Route(
        path=path,
        match=dict(spec.match),
        match_re=match_re,
        cont=spec.continue_,
        receiver=receiver,
        repeat_interval=_duration(repeat, file, f"{path}.repeat_interval", problems)
        if repeat
        else parent.repeat_interval,  # type: ignore[union-attr]
        ack_timeout=_duration(ack, file, f"{path}.ack_timeout", problems)
        if ack
        else parent.ack_timeout,  # type: ignore[union-attr]
        send_resolved=spec.send_resolved
        if spec.send_resolved is not None
        else (parent.send_resolved if parent else defaults.send_resolved),
        children=(),
        escalation_policy=spec.escalation_policy or (parent.escalation_policy if parent else None),
        digest=_digest(spec.digest, file, f"{path}.digest", problems)
        if spec.digest
        else (parent.digest if parent else None),
    )
    children = _children(spec.routes, path, node, defaults, receiver_problem, file, problems)
    return dataclasses.replace(node, children=children)


def _children(
    specs: list[RouteSpec],
    path: str,
    parent: Route,
    defaults: Defaults,
    receiver_problem: ReceiverCheck,
    file: str,
    problems: list[RoutingProblem],
) -> tuple[Route, ...]:
    routes = f"{path}.routes" if path else "routes"  # an agency file's routes are top-level
    children = tuple(
        _compile(c, f"{routes}.{i}", parent, defaults, receiver_problem, file, problems)
        for i, c in enumerate(specs)
    )
    # A child after a sibling that matches everything and does not continue is unreachable.
    for i, child in enumerate(children):
        if not child.match and not child.match_re and not child.cont:
            for j in range(i + 1, len(children)):
                problems.append(
                    RoutingProblem(
                        file,
                        f"{routes}.{j}",
                        f"unreachable: routes.{i} matches everything and does not continue",
                    )
                )
            break
    return children


def _parse(path: Path, model: type[M], file: str) -> M:
    """Read and validate one YAML file; RoutingInvalid naming file and path otherwise."""
    try:
        raw: Any = yamlio.load(path.read_text())
    except OSError as exc:
        raise RoutingInvalid(
            [RoutingProblem(file, "(file)", f"cannot read: {exc.strerror}")]
        ) from None
    except Exception as exc:  # yaml errors
        raise RoutingInvalid([RoutingProblem(file, "(file)", f"not valid YAML: {exc}")]) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RoutingInvalid(
            [
                RoutingProblem(
                    file,
                    ".".join(str(p) for p in e["loc"]) or "(root)",
                    e["msg"] + ("" if e["type"] == "missing" else f" (got {e['input']!r})"),
                )
                for e in exc.errors(include_url=False)
            ]
        ) from None


def _receiver_problems(
    receivers: list[ReceiverSpec], file: str, shared_file: bool
) -> list[RoutingProblem]:
    """Each receiver alone: unique name, a channel, exactly one way to address it; routing.yaml's
    serve every agency (shared, naming nobody's people), an agency file's are its own."""
    problems: list[RoutingProblem] = []
    names: set[str] = set()
    for i, r in enumerate(receivers):
        where = f"receivers.{i}"
        if r.name in names:
            problems.append(RoutingProblem(file, f"{where}.name", f"duplicate receiver {r.name!r}"))
        names.add(r.name)
        if r.name == CONSOLE_RECEIVER:
            problems.append(
                RoutingProblem(
                    file,
                    f"{where}.name",
                    f"{CONSOLE_RECEIVER!r} is reserved: acknowledgements made in the console are"
                    " recorded with that receiver; give this receiver another name",
                )
            )
        if not (r.email or r.webhook or r.sms):
            problems.append(RoutingProblem(file, where, "a receiver needs email, webhook or sms"))
        for kind, target in (("email", r.email), ("sms", r.sms)):
            if target is None:
                continue
            if sum(w is not None for w in target.ways()) != 1:
                problems.append(
                    RoutingProblem(
                        file,
                        f"{where}.{kind}",
                        "give exactly one of to, to_staff, to_person, to_role, to_schedule",
                    )
                )
            if shared_file and target.names_people():
                problems.append(
                    RoutingProblem(
                        file,
                        f"{where}.{kind}",
                        "a shared receiver serves every agency and can not name an agency's"
                        " people (to_staff, to_person, to_role, to_schedule, fallback_role):"
                        " declare it in"
                        " agencies/<agency_id>.yaml",
                    )
                )
        if shared_file and not r.shared:
            problems.append(
                RoutingProblem(
                    file,
                    f"{where}.shared",
                    "routing.yaml declares only receivers every agency shares: mark it"
                    " `shared: true`, or declare it in each agencies/<agency_id>.yaml",
                )
            )
        if not shared_file and r.shared:
            problems.append(
                RoutingProblem(
                    file, f"{where}.shared", "only routing.yaml declares shared receivers"
                )
            )
    return problems


def _agency(
    path: Path,
    parsed_routing: RoutingFile,
    root: Route,
    shared: dict[str, ReceiverSpec],
    owners: dict[str, set[str]],
    problems: list[RoutingProblem],
) -> Agency | None:
    file = f"agencies/{path.name}"
    try:
        spec = _parse(path, AgencyFile, file)
    except RoutingInvalid as exc:
        problems.extend(exc.problems)
        return None
    if spec.agency_id != path.stem:
        problems.append(
            RoutingProblem(file, "agency_id", f"must be the file's name ({path.stem!r})")
        )
    problems.extend(_receiver_problems(spec.receivers, file, shared_file=False))
    own = {r.name: r for r in spec.receivers}
    for i, r in enumerate(spec.receivers):
        if r.name in shared:
            problems.append(
                RoutingProblem(
                    file, f"receivers.{i}.name", f"{r.name!r} is a shared receiver's name"
                )
            )

    def receiver_problem(name: str) -> str | None:
        if name in own or name in shared:
            return None
        others = sorted(owners.get(name, set()) - {spec.agency_id})
        if others:
            return (
                f"receiver {name!r} is agency {others[0]}'s: an agency's routes reach only its"
                " own receivers and shared ones"
            )
        return f"unknown receiver {name!r}"

    for node in _nodes(root):
        tree_path, name = node.path, node.receiver
        if name not in own and name not in shared:
            problems.append(
                RoutingProblem(
                    file,
                    "receivers",
                    f"no receiver {name!r}, which routing.yaml {tree_path} names",
                )
            )
    children = _children(
        spec.routes, "", root, parsed_routing.defaults, receiver_problem, file, problems
    )
    own_root = dataclasses.replace(root, children=children + root.children)
    problems.extend(_secrets_shared(spec.receivers, shared, file))
    view = AgencyView(spec.agency_id, spec.name, spec.time_zone, spec.contact_24_7)
    schedules = compile_schedules(
        spec.schedules, spec.time_zone, path.parent.parent, file, problems
    )
    problems.extend(_schedule_references(spec, set(schedules), file))
    problems.extend(_fallback_problems(spec, own, shared, file))
    policies, people_receivers = _policies(spec, receiver_problem, set(schedules), file, problems)
    for node in _nodes(own_root):
        wanted = node.escalation_policy
        if wanted is not None and wanted not in policies:
            problems.append(
                RoutingProblem(file, node.path, f"unknown escalation policy {wanted!r}")
            )
    if spec.escalation_policy is not None and spec.escalation_policy not in policies:
        problems.append(
            RoutingProblem(
                file, "escalation_policy", f"unknown escalation policy {spec.escalation_policy!r}"
            )
        )
    return Agency(
        view=view,
        receivers={**own, **people_receivers},
        root=own_root,
        acknowledge_roles=frozenset(spec.acknowledge_roles),
        schedules=schedules,
        policies=policies,
        default_policy=spec.escalation_policy,
        fallback_receiver=spec.fallback_receiver,
    )


def _schedule_references(spec: AgencyFile, schedules: set[str], file: str) -> list[RoutingProblem]:
    """Each receiver's `to_schedule` names one of the agency's schedules."""
    return [
        RoutingProblem(
            file, f"receivers.{i}.{kind}.to_schedule", f"unknown schedule {target.to_schedule!r}"
        )
        for i, r in enumerate(spec.receivers)
        for kind, target in (("email", r.email), ("sms", r.sms))
        if target is not None
        and target.to_schedule is not None
        and target.to_schedule not in schedules
    ]


def _fallback_problems(
    spec: AgencyFile, own: dict[str, ReceiverSpec], shared: dict[str, ReceiverSpec], file: str
) -> list[RoutingProblem]:
    """The agency's fallback receiver and each receiver's are its own receivers (a silenced or
    maintained receiver's messages never go to anybody else's)."""
    problems: list[RoutingProblem] = []
    wanted = [("fallback_receiver", spec.fallback_receiver)] + [
        (f"receivers.{i}.fallback_receiver", r.fallback_receiver)
        for i, r in enumerate(spec.receivers)
    ]
    for where, name in wanted:
        if name is None or name in own:
            continue
        why = "is a shared receiver" if name in shared else "is not a receiver of this agency"
        problems.append(RoutingProblem(file, where, f"{name!r} {why}: name one of its own"))
    for i, r in enumerate(spec.receivers):
        if r.fallback_receiver == r.name:
            problems.append(
                RoutingProblem(file, f"receivers.{i}.fallback_receiver", "names itself")
            )
    return problems


def _policies(
    spec: AgencyFile,
    receiver_problem: ReceiverCheck,
    schedules: set[str],
    file: str,
    problems: list[RoutingProblem],
) -> tuple[dict[str, EscalationPolicy], dict[str, ReceiverSpec]]:
    """The agency's escalation policies, and a receiver for each person, role and schedule a
    level names (written to by email; named `person:<id>`, `role:<role>`, `schedule:<name>`)."""
    policies: dict[str, EscalationPolicy] = {}
    people_receivers: dict[str, ReceiverSpec] = {}
    for i, p in enumerate(spec.escalation_policies):
        where = f"escalation_policies.{i}"
        if p.name in policies:
            problems.append(RoutingProblem(file, f"{where}.name", f"duplicate policy {p.name!r}"))
        levels = []
        for j, level in enumerate(p.levels):
            reaches = []
            for k, target in enumerate(level.notify):
                at = f"{where}.levels.{j}.notify.{k}"
                reach = _reach(target, receiver_problem, schedules, file, at, problems)
                if reach is None:
                    continue
                reaches.append(reach[0])
                if reach[1] is not None:
                    people_receivers[reach[0].receiver] = reach[1]
            wait = _duration(level.wait, file, f"{where}.levels.{j}.wait", problems)
            levels.append(Level(tuple(reaches), wait))
        policies[p.name] = EscalationPolicy(p.name, tuple(levels), p.repeat)
    return policies, people_receivers


def _reach(
    target: LevelTarget,
    receiver_problem: ReceiverCheck,
    schedules: set[str],
    file: str,
    where: str,
    problems: list[RoutingProblem],
) -> tuple[Reach, ReceiverSpec | None] | None:
    """Whom one level target tells, and the receiver made for a person, role or schedule."""
    ways = [target.receiver, target.person, target.role, target.schedule]
    if sum(w is not None for w in ways) != 1:
        problems.append(
            RoutingProblem(file, where, "give exactly one of receiver, person, role, schedule")
        )
        return None
    if target.receiver is not None:
        if why := receiver_problem(target.receiver):
            problems.append(RoutingProblem(file, f"{where}.receiver", why))
            return None
        return Reach(target.receiver, target.recipient_class or "supervisor"), None
    if target.schedule is not None and target.schedule not in schedules:
        problems.append(
            RoutingProblem(file, f"{where}.schedule", f"unknown schedule {target.schedule!r}")
        )
        return None
    if target.person is not None:
        name, addressee = f"person:{target.person}", EmailTarget(to_person=target.person)
        shown = "supervisor"
    elif target.role is not None:
        name, addressee = f"role:{target.role}", EmailTarget(to_role=target.role)
        shown = target.role if target.role in RECIPIENT_CLASSES else "supervisor"
    else:
        name, addressee = f"schedule:{target.schedule}", EmailTarget(to_schedule=target.schedule)
        shown = "on_call"
    # Made here, not read from a file: the name's `:` keeps it apart from declared receivers.
    receiver = ReceiverSpec.model_construct(name=name, email=addressee)
    return Reach(name, target.recipient_class or shown), receiver


def _nodes(route: Route) -> list[Route]:
    return [route] + [n for c in route.children for n in _nodes(c)]


def _secrets_shared(
    receivers: list[ReceiverSpec], shared: dict[str, ReceiverSpec], file: str
) -> list[RoutingProblem]:
    """An agency's webhook never signs with a shared receiver's key: whoever holds it could sign
    messages about every agency's children."""
    keys = {r.webhook.secret_env for r in shared.values() if r.webhook and r.webhook.secret_env}
    return [
        RoutingProblem(
            file,
            f"receivers.{i}.webhook.secret_env",
            f"{r.webhook.secret_env} signs shared receivers' webhooks: give this agency's"
            " webhook a key of its own",
        )
        for i, r in enumerate(receivers)
        if r.webhook and r.webhook.secret_env in keys
    ]


def agency_files(policy_dir: Path) -> list[Path]:
    return sorted((policy_dir / "agencies").glob("*.yaml"))


def load_routing(path: Path) -> Routing:
    """Load and cross-check routing.yaml and the agency files beside it
    (`agencies/*.yaml`). Raises RoutingInvalid with every problem."""
    file = path.name
    parsed = _parse(path, RoutingFile, file)
    problems = _receiver_problems(parsed.receivers, file, shared_file=True)
    for key in ("staff", "agency_contact"):
        if getattr(parsed, key) is not None:
            problems.append(
                RoutingProblem(
                    file,
                    key,
                    "people live in the people registry (CAREALERT_USERS_FILE) and each"
                    " agency's 24/7 number in agencies/<agency_id>.yaml, not here",
                )
            )
    shared = {r.name: r for r in parsed.receivers}
    if parsed.operator_receiver is not None and parsed.operator_receiver not in shared:
        problems.append(
            RoutingProblem(
                file, "operator_receiver", f"{parsed.operator_receiver!r} is not a shared receiver"
            )
        )
    files = agency_files(path.parent)
    owners = _receiver_owners(files)
    declared = set(owners)

    def receiver_problem(name: str) -> str | None:
        if name in shared or name in declared:
            return None
        return f"unknown receiver {name!r}: not shared, and no agency declares it"

    root = _compile(parsed.route, "route", None, parsed.defaults, receiver_problem, file, problems)
    problems.extend(
        RoutingProblem(
            file,
            node.path,
            "escalation policies are an agency's: set escalation_policy in"
            " agencies/<agency_id>.yaml",
        )
        for node in _nodes(root)
        if node.escalation_policy is not None
    )
    problems.extend(
        RoutingProblem(
            file,
            f"receivers.{i}.fallback_receiver",
            "shared receivers are never silenced or put under maintenance by an agency",
        )
        for i, r in enumerate(parsed.receivers)
        if r.fallback_receiver is not None
    )
    agencies = {}
    for agency_path in files:
        agency = _agency(agency_path, parsed, root, shared, owners, problems)
        if agency is not None:
            agencies[agency.view.agency_id] = agency
    if problems:
        raise RoutingInvalid(problems)
    return Routing(
        root=root,
        shared=shared,
        agencies=agencies,
        defaults=parsed.defaults,
        shelter_photo=parsed.shelter_photo,
        operator_receiver=parsed.operator_receiver,
    )


def _receiver_owners(files: list[Path]) -> dict[str, set[str]]:
    """Receiver name → the agencies declaring one by that name (read leniently: each file's
    own problems are reported when it is loaded)."""
    owners: dict[str, set[str]] = {}
    for f in files:
        receivers, _ = read_entries(f, "receivers")
        for r in receivers:
            if isinstance(r, dict) and isinstance(r.get("name"), str):
                owners.setdefault(r["name"], set()).add(f.stem)
    return owners
