"""Who is who, for notify and `policy check`: the agencies and their receivers (the policy
directory), the people (the registry) and the API tokens, and the cross-checks between them
(each a problem naming file and path):

- an agency file's reference to a person who is not in the registry, or is another agency's;
- a role an agency's receiver writes to that none of the agency's enabled people holds;
- people, ingest API keys or operator tokens of an agency that has no agency file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from services.common.canary import CANARY_AGENCY
from services.common.config import ConfigProblem
from services.common.people import People, read_entries, registry_files
from services.common.tokens import ApiTokens
from services.notify.channels.base import Addressee
from services.notify.config import load_routing
from services.notify.routing import Agency, Routing
from services.notify.settings import NotifySettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tenancy:
    routing: Routing
    people: People
    tokens: ApiTokens


def load_tenancy(settings: NotifySettings) -> Tenancy:
    """The routing files, the registry and the tokens notify runs with. A file that can not be
    used raises (notify does not start); a cross-check problem (e.g. a person who left) is
    logged and the message falls back as the receiver says: `policy check` is the gate."""
    routing = load_routing(settings.policy_dir / "routing.yaml")
    users, tokens_file = settings.users_file, settings.api_tokens_file
    people = People.load(users) if users is not None else People.empty()
    tokens = (
        ApiTokens.load(tokens_file, demo=settings.env == "demo")
        if tokens_file is not None
        else ApiTokens.empty()
    )
    problems = tenancy_problems(routing, people, tokens, tokens_file=tokens_file, users_file=users)
    for problem in problems:
        log.warning("tenancy cross-check", extra={"file": problem.file, "reason": problem.reason})
    return Tenancy(routing, people, tokens)


def _targets(agency: Agency) -> list[tuple[str, Addressee]]:
    """(path in the agency file, addressing) of each email and sms receiver."""
    out: list[tuple[str, Addressee]] = []
    for i, spec in enumerate(agency.receivers.values()):
        # A receiver an escalation level made for a person, role or schedule (`person:W-1`).
        where = f"escalation_policies ({spec.name})" if ":" in spec.name else f"receivers.{i}"
        for kind, target in (("email", spec.email), ("sms", spec.sms)):
            if target is not None:
                out.append((f"{where}.{kind}", target))
    return out


def _person_problem(people: People, agency_id: str, person_id: str) -> str | None:
    """Why an agency may not name this person: not in the registry, another agency's, or
    disabled; None if it may."""
    person = people.get(agency_id, person_id)
    if person is None:
        foreign = any(
            people.get(other, person_id) is not None for other in people.agencies() - {agency_id}
        )
        if foreign:
            return f"{person_id!r} is another agency's person: an agency names only its own people"
        return f"{person_id!r} is not in the people registry"
    return "names a disabled person" if person.disabled else None


def people_problems(routing: Routing, people: People) -> list[ConfigProblem]:
    """Each agency's references to its people (receivers, schedules), checked against the
    registry."""
    problems: list[ConfigProblem] = []
    for agency_id, agency in sorted(routing.agencies.items()):
        file = f"agencies/{agency_id}.yaml"
        named = [(f"{where}.to_person", t.to_person) for where, t in _targets(agency)]
        for i, schedule in enumerate(agency.schedules.values()):
            named += [(f"schedules.{i}.{where}", pid) for where, pid in schedule.people()]
        for where, person_id in named:
            if person_id is not None and (why := _person_problem(people, agency_id, person_id)):
                problems.append(ConfigProblem(file, where, why))
        for where, target in _targets(agency):
            for key, role in (("to_role", target.to_role), ("fallback_role", target.fallback_role)):
                if role is not None and not people.with_role(agency_id, role):
                    problems.append(
                        ConfigProblem(
                            file,
                            f"{where}.{key}",
                            f"no enabled person of {agency_id} has the role {role!r}",
                        )
                    )
    return problems


def unconfigured(
    routing: Routing, file: str, agencies: list[tuple[str, str]], what: str
) -> list[ConfigProblem]:
    """A problem for each (path, agency id) whose agency has no agency file."""
    return [
        ConfigProblem(file, where, f"{what} of agency {agency_id!r}, which has no agency file")
        for where, agency_id in agencies
        if agency_id not in routing.agencies and agency_id not in (CANARY_AGENCY, "*")
    ]


def entries_agencies(path: Path, key: str) -> list[tuple[str, str]]:
    """(path, agency_id) of each entry of a keys, tokens or people file (read leniently: the
    file's own problems are reported by its own loader)."""
    entries, _ = read_entries(path, key)
    return [
        (f"{key}.{i}.agency_id", e["agency_id"])
        for i, e in enumerate(entries)
        if isinstance(e, dict) and isinstance(e.get("agency_id"), str)
    ]


def receiver_token_problems(routing: Routing, tokens_file: Path) -> list[ConfigProblem]:
    """A receiver token names a receiver it can acknowledge for: a shared one for `*`, else
    one of its agency's own or a shared one."""
    entries, _ = read_entries(tokens_file, "tokens")
    problems: list[ConfigProblem] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("role") != "receiver":
            continue
        name, agency_id = e.get("receiver"), e.get("agency_id")
        if not isinstance(name, str) or not isinstance(agency_id, str):
            continue  # the tokens file's own loader says what is wrong
        found = (
            name in routing.shared
            if agency_id == "*"
            else routing.receiver(agency_id, name) is not None
        )
        if not found:
            scope = "a shared receiver" if agency_id == "*" else f"a receiver of {agency_id}"
            problems.append(
                ConfigProblem(str(tokens_file), f"tokens.{i}.receiver", f"{name!r} is not {scope}")
            )
    return problems


def tenancy_problems(
    routing: Routing,
    people: People,
    tokens: ApiTokens | None = None,
    *,
    api_keys_file: Path | None = None,
    tokens_file: Path | None = None,
    users_file: Path | None = None,
) -> list[ConfigProblem]:
    """Every cross-check between the agency files, the registry (when there is one), the keys
    and the tokens."""
    problems = people_problems(routing, people) if users_file is not None else []
    if tokens is not None:
        problems += tokens.check_people(people)
    if api_keys_file is not None:
        problems += unconfigured(
            routing, str(api_keys_file), entries_agencies(api_keys_file, "keys"), "an API key"
        )
    if tokens_file is not None:
        problems += unconfigured(
            routing, str(tokens_file), entries_agencies(tokens_file, "tokens"), "a token"
        )
        problems += receiver_token_problems(routing, tokens_file)
    if users_file is not None:
        for f in registry_files(users_file):
            problems += unconfigured(routing, str(f), entries_agencies(f, "people"), "a person")
    return problems
