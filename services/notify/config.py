"""The routing file (rules/routing.yaml): its models, each channel's settings beside its sender
(services.notify.channels), and the cross-reference pass that compiles it into the routing tree
(services.notify.routing).

`load_routing(path)` parses strictly, then cross-checks (unknown receiver, unknown recipient
class or severity in a matcher, unreachable route, unknown staff role), raising
`RoutingInvalid` with every problem as "file: path: reason".
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from services.common import yamlio
from services.common.config import ConfigInvalid, ConfigProblem
from services.common.durations import parse_duration
from services.common.models import Strict
from services.notify.channels.email import EmailTarget
from services.notify.channels.sms import SmsTarget
from services.notify.channels.webhook import WebhookTarget
from services.notify.routing import KNOWN_VALUES, LABELS, Route, Routing


class ReceiverSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    email: EmailTarget | None = None
    webhook: WebhookTarget | None = None
    sms: SmsTarget | None = None


class StaffContact(Strict):
    name: str
    email: str | None = None
    sms: str | None = None


class RouteSpec(Strict):
    receiver: str | None = None
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    continue_: bool = Field(default=False, alias="continue")
    repeat_interval: str | None = None
    ack_timeout: str | None = None
    send_resolved: bool | None = None
    routes: list[RouteSpec] = []


class Defaults(Strict):
    repeat_interval: str = "4h"
    ack_timeout: str = "1h"
    send_resolved: bool = True
    max_reminders: int = Field(default=6, ge=0, le=100)


class RoutingFile(Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    agency_contact: dict[str, str] = {}
    shelter_photo: bool = False
    staff: dict[str, StaffContact] = {}
    receivers: list[ReceiverSpec]
    route: RouteSpec


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


def _compile(
    spec: RouteSpec,
    path: str,
    parent: Route | None,
    parsed: RoutingFile,
    file: str,
    problems: list[RoutingProblem],
) -> Route:
    receivers = {r.name for r in parsed.receivers}
    receiver = spec.receiver or (parent.receiver if parent else "")
    if not receiver:
        problems.append(RoutingProblem(file, f"{path}.receiver", "the root route needs a receiver"))
    elif receiver not in receivers:
        problems.append(RoutingProblem(file, f"{path}.receiver", f"unknown receiver {receiver!r}"))
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
    d = parsed.defaults
    repeat = spec.repeat_interval or (None if parent else d.repeat_interval)
    ack = spec.ack_timeout or (None if parent else d.ack_timeout)
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
        else (parent.send_resolved if parent else d.send_resolved),
        children=(),
    )
    children = tuple(
        _compile(c, f"{path}.routes.{i}", node, parsed, file, problems)
        for i, c in enumerate(spec.routes)
    )
    # A child after a sibling that matches everything and does not continue is unreachable.
    for i, child in enumerate(children):
        if not child.match and not child.match_re and not child.cont:
            for j in range(i + 1, len(children)):
                problems.append(
                    RoutingProblem(
                        file,
                        f"{path}.routes.{j}",
                        f"unreachable: routes.{i} matches everything and does not continue",
                    )
                )
            break
    return dataclasses.replace(node, children=children)


def load_routing(path: Path) -> Routing:
    """Load and cross-check a routing file. Raises RoutingInvalid with every problem."""
    file = path.name
    problems: list[RoutingProblem] = []
    try:
        raw: Any = yamlio.load(path.read_text())
    except OSError as exc:
        raise RoutingInvalid(
            [RoutingProblem(file, "(file)", f"cannot read: {exc.strerror}")]
        ) from None
    except Exception as exc:  # yaml errors
        raise RoutingInvalid([RoutingProblem(file, "(file)", f"not valid YAML: {exc}")]) from None
    try:
        parsed = RoutingFile.model_validate(raw)
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
    names: set[str] = set()
    for i, r in enumerate(parsed.receivers):
        if r.name in names:
            problems.append(
                RoutingProblem(file, f"receivers.{i}.name", f"duplicate receiver {r.name!r}")
            )
        names.add(r.name)
        if not (r.email or r.webhook or r.sms):
            problems.append(
                RoutingProblem(file, f"receivers.{i}", "a receiver needs email, webhook or sms")
            )
        if r.email and bool(r.email.to) == bool(r.email.to_staff):
            problems.append(
                RoutingProblem(file, f"receivers.{i}.email", "give exactly one of to, to_staff")
            )
        if r.sms and bool(r.sms.to) == bool(r.sms.to_staff):
            problems.append(
                RoutingProblem(file, f"receivers.{i}.sms", "give exactly one of to, to_staff")
            )
    root = _compile(parsed.route, "route", None, parsed, file, problems)
    if problems:
        raise RoutingInvalid(problems)
    return Routing(
        root=root,
        receivers={r.name: r for r in parsed.receivers},
        staff=parsed.staff,
        defaults=parsed.defaults,
        agency_contact=parsed.agency_contact,
        shelter_photo=parsed.shelter_photo,
    )
