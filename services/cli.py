"""The `carealert` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from services.common.config import ConfigProblem
from services.common.kafka import KafkaUnavailable
from services.ingest.keys import ApiKeysInvalid

if TYPE_CHECKING:
    from services.common.people import People, Person


def _schemas(out_dir: Path) -> int:
    from services.common.events import event_json_schema

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "event.schema.json"
    target.write_text(json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {target}\n")
    return 0


def _apikey_new(agency_id: str, label: str) -> int:
    from services.common.secrets import secret_hash
    from services.ingest.keys import new_key

    key = new_key()
    sys.stdout.write(f"API key (give it to the agency; it is not stored): {key}\n")
    sys.stdout.write("Add to the keys file:\n")
    sys.stdout.write(
        f"  - agency_id: {agency_id}\n    label: {label}\n    sha256: {secret_hash(key)}\n"
    )
    return 0


# --- people and API tokens ----------------------------------------------------------------------

# The flag each registry or tokens field comes from, so a problem names what the user typed.
_FLAGS = {
    "agency_id": "--agency",
    "roles": "--role",
    "person_id": "--person",
    "receiver": "--receiver",
    "role": "--role",
}


def _problems(command: str, problems: Sequence[ConfigProblem]) -> int:
    """Print each problem on its line (a flag for the command line's own); exit status 1."""
    from services.common.people import NEW_ENTRY

    for p in problems:
        if p.file == NEW_ENTRY:
            flag = _FLAGS.get(p.path.split(".")[0], "--" + p.path.split(".")[0])
            sys.stderr.write(f"carealert {command}: {flag}: {p.reason}\n")
        else:
            sys.stderr.write(f"carealert {command}: {p}\n")
    return 1


def _file_option(given: Path | None, variable: str, command: str) -> Path | None:
    import os

    if given is not None:
        return given
    if os.environ.get(variable):
        return Path(os.environ[variable])
    sys.stderr.write(f"carealert {command}: no file: give --file or set {variable}\n")
    return None


def _read_password(command: str, from_stdin: bool) -> str | None:
    """A new password: a line of standard input, or typed twice at a terminal."""
    import getpass

    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        sys.stderr.write(f"carealert {command}: the two passwords differ; nothing changed\n")
        return None
    return first


def _holding_file(registry: Path, agency_id: str, person_id: str | None) -> Path:
    """The file of a registry to edit: the one holding the person (or, for a new person, the
    agency's first file); a registry directory gets `<agency>.yaml` for a new agency."""
    from services.common.people import load_file, registry_files

    if not registry.is_dir():
        return registry
    files = registry_files(registry)
    for file in files:
        people = load_file(file)
        if any(p.agency_id == agency_id and person_id in (None, p.id) for p in people):
            return file
    return registry / f"{agency_id}.yaml"


def _user(args: argparse.Namespace) -> int:
    from services.common.people import People, PeopleInvalid

    command = f"user {args.user_command}"
    registry = _file_option(args.file, "CAREALERT_USERS_FILE", command)
    if registry is None:
        return 2
    try:
        if args.user_command == "list":
            return _user_list(People.load(registry), args.agency)
        return _user_edit(args, registry, command)
    except PeopleInvalid as exc:
        return _problems(command, exc.problems)
    except ValueError as exc:  # a password too short or too long
        sys.stderr.write(f"carealert {command}: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"carealert {command}: {exc.filename}: {exc.strerror}\n")
        return 1


def _user_edit(args: argparse.Namespace, registry: Path, command: str) -> int:
    """add, passwd or disable: the whole registry is checked, then one file rewritten."""
    from services.common.people import NEW_ENTRY, People, load_file, registry_files, save_people

    adding = args.user_command == "add"
    absent = not registry.exists() or (registry.is_dir() and not registry_files(registry))
    everyone = People.empty() if adding and absent else People.load(registry)
    known = everyone.get(args.agency, args.id)
    if adding == (known is not None):
        reason = (
            f"{args.id} is already a person of {args.agency}"
            if adding
            else f"no person {args.id} in {args.agency}"
        )
        return _problems(command, [ConfigProblem(NEW_ENTRY, "id", reason)])
    file = _holding_file(registry, args.agency, None if adding else args.id)
    people = load_file(file) if file.exists() else []
    if adding:
        people.append(_new_person(args, command))
    else:
        i = next(n for n, p in enumerate(people) if (p.agency_id, p.id) == (args.agency, args.id))
        if args.user_command == "disable":
            people[i] = people[i].model_copy(update={"disabled": True})
        else:
            password = _read_password(command, from_stdin=False)
            if password is None:
                return 1
            people[i] = _with_password(people[i], password)
    save_people(file, people)
    done = {"add": "added", "passwd": "new password for", "disable": "disabled"}
    sys.stdout.write(f"{done[args.user_command]} {args.agency} {args.id} in {file}\n")
    return 0


def _new_person(args: argparse.Namespace, command: str) -> Person:
    from services.common.people import NEW_ENTRY, person_from

    raw = {"id": args.id, "agency_id": args.agency, "name": args.name, "roles": args.role}
    raw |= {k: v for k, v in (("email", args.email), ("sms", args.sms)) if v is not None}
    person = person_from(raw, NEW_ENTRY)
    if args.password_stdin:
        person = _with_password(person, _read_password(command, from_stdin=True) or "")
    return person


def _with_password(person: Person, password: str) -> Person:
    """The person with a new argon2id hash (the model is frozen: a copy, validated again)."""
    from services.common.people import Person, hash_password

    return Person.model_validate({**person.model_dump(), "password_hash": hash_password(password)})


def _user_list(people: People, agency_id: str) -> int:
    listed = people.of_agency(agency_id)
    if not listed:
        sys.stderr.write(f"carealert user list: nobody in agency {agency_id}\n")
    for p in listed:
        state = "disabled" if p.disabled else "active"
        sys.stdout.write(f"{p.id}\t{','.join(p.roles)}\t{state}\n")
    return 0


def _token_add(args: argparse.Namespace) -> int:
    from services.common.secrets import secret_hash
    from services.common.tokens import ApiTokensInvalid, append_token, new_token

    path = _file_option(args.file, "CAREALERT_API_TOKENS_FILE", "token add")
    if path is None:
        return 2
    token = new_token()
    entry = {"sha256": secret_hash(token), "agency_id": args.agency, "role": args.role}
    optional = (("label", args.label), ("person_id", args.person), ("receiver", args.receiver))
    entry |= {k: v for k, v in optional if v is not None}
    try:
        append_token(path, entry)
    except ApiTokensInvalid as exc:
        return _problems("token add", exc.problems)
    except OSError as exc:
        sys.stderr.write(f"carealert token add: {exc.filename}: {exc.strerror}\n")
        return 1
    sys.stderr.write(
        f"added a token (role {args.role}, agency {args.agency}) to {path}; only its hash is"
        " kept, so this is the only time the token is shown:\n"
    )
    sys.stdout.write(token + "\n")
    return 0


@dataclass(frozen=True)
class TenancyFiles:
    """The files outside the policy directory that `policy check` cross-checks it against."""

    users: Path | None = None
    api_keys: Path | None = None
    tokens: Path | None = None


def policy_problems(directory: Path, files: TenancyFiles | None = None) -> list[str]:
    """Every problem in the policy directory (rules, overlays, risk, routing, agencies,
    templates, on-call gaps in the next 28 days), each as "path: where: reason"; with `files`,
    also the cross-checks against the people registry, the ingest API keys and the operators'
    tokens."""
    from datetime import UTC, datetime

    from services.common.config import ConfigInvalid
    from services.common.people import People
    from services.common.tokens import ApiTokens
    from services.notify.config import RoutingInvalid, load_routing
    from services.notify.oncall import gap_problems
    from services.notify.templates import check_templates
    from services.notify.tenancy import tenancy_problems
    from services.rules.policy import PolicyInvalid, load_policy

    problems: list[str] = []
    try:
        load_policy(directory)
    except PolicyInvalid as exc:
        problems += [f"{directory}/{p}" for p in exc.problems]
    routing = None
    try:
        routing = load_routing(directory / "routing.yaml")
    except RoutingInvalid as exc:
        problems += [f"{directory}/{p}" for p in exc.problems]
    if routing is not None:
        now = datetime.now(UTC)  # the command line is the edge: the gap check looks ahead from now
        for agency_id, agency in routing.agencies.items():
            gaps = gap_problems(agency.schedules, f"agencies/{agency_id}.yaml", now)
            problems += [f"{directory}/{p}" for p in gaps]
    problems += [f"{directory}/{p}" for p in check_templates(directory / "templates")]
    if files is None or routing is None:
        return problems
    try:
        people = People.load(files.users) if files.users is not None else People.empty()
        tokens = ApiTokens.load(files.tokens, demo=True) if files.tokens is not None else None
    except ConfigInvalid as exc:
        return problems + [str(p) for p in exc.problems]
    for p in tenancy_problems(
        routing,
        people,
        tokens,
        api_keys_file=files.api_keys,
        tokens_file=files.tokens,
        users_file=files.users,
    ):
        problems.append(f"{directory}/{p}" if p.file.startswith("agencies/") else str(p))
    return problems


def _tenancy_files(args: argparse.Namespace) -> TenancyFiles:
    """--users, --api-keys and --tokens, else CAREALERT_USERS_FILE, CAREALERT_API_KEYS_FILE and
    CAREALERT_API_TOKENS_FILE."""
    import os

    def given(flag: Path | None, variable: str) -> Path | None:
        return flag or (Path(os.environ[variable]) if os.environ.get(variable) else None)

    return TenancyFiles(
        users=given(args.users, "CAREALERT_USERS_FILE"),
        api_keys=given(args.api_keys, "CAREALERT_API_KEYS_FILE"),
        tokens=given(args.tokens, "CAREALERT_API_TOKENS_FILE"),
    )


def _policy_check(directory: Path, files: TenancyFiles) -> int:
    from services.rules.policy import load_policy

    problems = policy_problems(directory, files)
    if problems:
        for problem in problems:
            sys.stderr.write(f"{problem}\n")
        sys.stderr.write(f"policy check: {len(problems)} problem(s)\n")
        return 1
    from services.rules.explain import duty_list

    policy = load_policy(directory)
    rules = len(policy.rules) + sum(len(r) - len(policy.rules) for r in policy.overlays.values())
    checked = [str(f) for f in (files.users, files.api_keys, files.tokens) if f is not None] or [
        "nothing (no --users, --api-keys, --tokens)"
    ]
    sys.stdout.write(
        f"policy ok: {rules} rules, overlays {', '.join(sorted(policy.overlays)) or 'none'}, "
        f"version {policy.version[:12]}\n"
        f"cross-checked against: {', '.join(checked)}\n"
        "duties by state (`carealert policy explain --state XX` for triggers, formulas and "
        "sources; states without an overlay have the base rules):\n"
        f"{duty_list(policy, sorted(policy.overlays))}\n"
    )
    return 0


def _policy_explain(directory: Path, state: str) -> int:
    from services.common import yamlio
    from services.common.events import USPS_STATES
    from services.rules.explain import explain
    from services.rules.policy import load_policy

    state = state.upper()
    if state not in USPS_STATES:
        sys.stderr.write("policy explain: --state must be a two-letter USPS code such as MO\n")
        return 2
    if policy_problems(directory):
        return _policy_check(directory, TenancyFiles())
    policy = load_policy(directory)
    overlay = None
    path = directory / "jurisdictions" / f"{state}.yaml"
    if state in policy.overlays and path.is_file():
        data = yamlio.load(path.read_text())  # checked by load_policy above
        overlay = (str(data["name"]), str(data["basis"]))
    sys.stdout.write(explain(policy, state, overlay))
    return 0


def _policy_test(directory: Path) -> int:
    from services.rules.core import Engine
    from services.rules.policy import load_policy
    from services.rules.scenarios import run_directory

    if policy_problems(directory):
        return _policy_check(directory, TenancyFiles())
    policy = load_policy(directory)
    from services.notify.config import load_routing
    from services.notify.routing_cases import run_routing_cases
    from services.rules.scenarios import ScenarioResult

    results = run_directory(Engine(policy), directory)
    routing = load_routing(directory / "routing.yaml")
    results += [
        ScenarioResult(f, n, fs) for f, n, fs in run_routing_cases(routing, directory / "tests")
    ]
    failed = [r for r in results if r.failures]
    for r in results:
        mark = "FAIL" if r.failures else "ok  "
        sys.stdout.write(f"{mark} {r.file}: {r.name}\n")
        for f in r.failures:
            sys.stdout.write(f"      {f}\n")
    sys.stdout.write(f"{len(results) - len(failed)} passed, {len(failed)} failed\n")
    return 1 if failed or not results else 0


def _replay(path: Path, directory: Path, until: str | None) -> int:
    from datetime import datetime

    from services.common.events import EventInvalid, parse_event
    from services.rules.core import ConflictingDuplicate, Engine
    from services.rules.offline import VirtualRun
    from services.rules.policy import PolicyInvalid, load_policy

    try:
        policy = load_policy(directory)
    except PolicyInvalid:
        return _policy_check(directory, TenancyFiles())
    run = VirtualRun(Engine(policy))
    bad = 0
    with path.open("rb") as lines:
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = parse_event(line)
            except EventInvalid as exc:
                sys.stderr.write(f"{path}:{n}: {exc.reason}\n")
                bad += 1
                continue
            try:
                applied = run.apply(event)
            except ConflictingDuplicate:
                sys.stderr.write(f"{path}:{n}: event_id seen before with different content\n")
                bad += 1
                continue
            for esc in applied:
                sys.stdout.write(esc.model_dump_json(exclude_none=True) + "\n")
    if until:
        for esc in run.advance(datetime.fromisoformat(until)):
            sys.stdout.write(esc.model_dump_json(exclude_none=True) + "\n")
    return 1 if bad else 0


def _simulate(args: argparse.Namespace) -> int:
    import httpx

    from services.localdev.simulate import SimConfig, generate, to_jsonl

    events = generate(
        SimConfig(
            children=args.children,
            days=args.days,
            seed=args.seed,
            agency_id=args.agency,
            state=args.state,
            caseworkers=tuple(args.caseworkers.split(",")),
            supervisor=args.supervisor,
        )
    )
    if args.post:
        headers = {"Authorization": f"Bearer {args.api_key}"}
        with httpx.Client(timeout=30) as client:
            for i in range(0, len(events), 1000):
                chunk = events[i : i + 1000]
                r = client.post(
                    f"{args.post.rstrip('/')}/v1/events:batch",
                    json={"events": chunk},
                    headers=headers,
                )
                if r.status_code != 202:
                    sys.stderr.write(f"simulate: ingest answered {r.status_code}: {r.text[:500]}\n")
                    return 1
        sys.stdout.write(f"posted {len(events)} events for {args.children} children\n")
        return 0
    out = sys.stdout if args.out in (None, "-") else open(args.out, "w")  # noqa: SIM115
    try:
        out.writelines(to_jsonl(events))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from services.common.dlq import ReplayRefused, replay
    from services.common.settings import CommonSettings

    kafka = CommonSettings().kafka()  # KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, ...
    fixed = args.value_file.read_bytes() if args.value_file else None
    try:
        where = replay(kafka, args.topic, args.partition, args.offset, fixed)
    except ReplayRefused as exc:
        sys.stderr.write(f"dlq replay: {exc}\n")
        return 1
    sys.stdout.write(f"replayed to {where}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from services.console_cli import add_parser as console_parser
    from services.oncall_cli import add_parser as oncall_parser
    from services.report_cli import add_parser as report_parser
    from services.silence_cli import add_parser as silence_parser

    parser = argparse.ArgumentParser(prog="carealert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="run the ingest HTTP service")
    sub.add_parser("rules", help="run the rules worker (faust)")
    sub.add_parser("notify", help="run the notify worker and its HTTP API")
    sub.add_parser("gate", help="run the gate: agencies' input topics to care.events.v1")
    sinks = sub.add_parser("sinks", help="run a local SMTP sink and webhook/SMS sink (demo)")
    sinks.add_argument("--smtp-port", type=int, default=2525)
    sinks.add_argument("--http-port", type=int, default=8090)
    sinks.add_argument("--dir", type=Path, default=Path(".run/sink"))
    policy = sub.add_parser("policy", help="check or test the policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="validate rules, overlays, routing, templates")
    check.add_argument("dir", nargs="?", default="rules", type=Path)
    check.add_argument(
        "--users", type=Path, help="the people registry (default: $CAREALERT_USERS_FILE)"
    )
    check.add_argument(
        "--api-keys", type=Path, help="ingest's API keys (default: $CAREALERT_API_KEYS_FILE)"
    )
    check.add_argument(
        "--tokens", type=Path, help="operators' API tokens (default: $CAREALERT_API_TOKENS_FILE)"
    )
    ptest = policy_sub.add_parser("test", help="run the scenario tests in DIR/tests/*.yaml")
    ptest.add_argument("dir", nargs="?", default="rules", type=Path)
    pexplain = policy_sub.add_parser(
        "explain", help="every duty in force in a state: trigger, deadline, recipients, source"
    )
    pexplain.add_argument("--state", required=True, help="two-letter USPS code, e.g. TX")
    pexplain.add_argument("dir", nargs="?", default="rules", type=Path)
    rp = sub.add_parser("replay", help="run events offline, event time as the clock")
    rp.add_argument("file", type=Path, help="JSON lines, one Event per line")
    rp.add_argument("--policy", default="rules", type=Path)
    rp.add_argument("--until", help="advance the clock to this RFC 3339 time at the end")
    sim = sub.add_parser("simulate", help="generate a synthetic caseload (JSON lines or POST)")
    sim.add_argument("--children", type=int, default=100)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--agency", default="demo-agency")
    sim.add_argument("--state", help="every child in this state (default: a mix of states)")
    sim.add_argument("--caseworkers", default="W-1,W-2", help="staff ids, comma-separated")
    sim.add_argument("--supervisor", default="S-1", help="the supervisor's staff id")
    sim.add_argument("--out", help="file for JSON lines (default: standard output)")
    sim.add_argument("--post", help="ingest base URL to POST the events to, in batches")
    sim.add_argument("--api-key", default="demo-not-a-secret")
    schemas = sub.add_parser("schemas", help="export JSON Schema of the Event contract")
    schemas.add_argument("dir", nargs="?", default="docs/schemas", type=Path)
    dlq = sub.add_parser("dlq", help="dead-letter topics")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dreplay = dlq_sub.add_parser(
        "replay", help="re-publish one dead-lettered record to its source topic, once fixed"
    )
    dreplay.add_argument("--topic", required=True, help="care.events.dlq or care.escalations.dlq")
    dreplay.add_argument("--partition", type=int, required=True)
    dreplay.add_argument("--offset", type=int, required=True)
    dreplay.add_argument(
        "--value-file", type=Path, help="the corrected record (default: the original bytes)"
    )
    apikey = sub.add_parser("apikey", help="generate an API key and its keys-file entry")
    apikey.add_argument("--agency", required=True)
    apikey.add_argument("--label", default="")
    _people_parsers(sub)
    oncall_parser(sub)
    silence_parser(sub)
    console_parser(sub)
    report_parser(sub)
    return parser


def _people_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.common.people import ROLES
    from services.common.tokens import TOKEN_ROLES

    user = sub.add_parser("user", help="the people registry (CAREALERT_USERS_FILE)")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    helps = {
        "add": "add a person to an agency",
        "passwd": "set a person's password (standard input, or typed twice)",
        "disable": "disable a person (kept in the registry, no longer notified or signed in)",
        "list": "an agency's people: id, roles, active or disabled",
    }
    for name, text in helps.items():
        cmd = user_sub.add_parser(name, help=text)
        cmd.add_argument("--agency", required=True)
        if name != "list":
            cmd.add_argument("--id", required=True, help="the agency's staff id, e.g. W-1")
        cmd.add_argument("--file", type=Path, help="default: $CAREALERT_USERS_FILE")
        if name == "add":
            cmd.add_argument("--name", required=True)
            cmd.add_argument("--email")
            cmd.add_argument("--sms", help="E.164, e.g. +15555550101")
            cmd.add_argument("--role", required=True, action="append", choices=ROLES)
            cmd.add_argument(
                "--password-stdin", action="store_true", help="read a password from stdin"
            )
    token = sub.add_parser("token", help="API tokens (CAREALERT_API_TOKENS_FILE)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    tadd = token_sub.add_parser("add", help="issue a token: printed once, its hash stored")
    tadd.add_argument("--agency", required=True, help='agency id, or "*" for a shared receiver')
    tadd.add_argument("--role", required=True, choices=TOKEN_ROLES)
    tadd.add_argument("--person", help="the person the token acts as (staff id)")
    tadd.add_argument("--receiver", help="the receiver (role receiver only)")
    tadd.add_argument("--label", help="who holds it, for people (never logged with the token)")
    tadd.add_argument("--file", type=Path, help="default: $CAREALERT_API_TOKENS_FILE")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "ingest":
            from services.ingest.main import run
            from services.ingest.settings import IngestSettings

            run(IngestSettings())
            return 0
        if args.command == "rules":
            from services.rules.main import run as run_rules
            from services.rules.settings import RulesSettings

            run_rules(RulesSettings())
            return 0
        if args.command == "notify":
            from services.notify.main import run as run_notify
            from services.notify.settings import NotifySettings

            run_notify(NotifySettings())
            return 0
        if args.command == "gate":
            from services.gate.main import main as run_gate

            return run_gate()
        if args.command == "sinks":
            import os

            from services.localdev.sinks import run_sinks

            run_sinks(
                args.smtp_port, args.http_port, args.dir, os.environ.get("CAREALERT_WEBHOOK_SECRET")
            )
            return 0
        if args.command == "policy":
            if args.policy_command == "check":
                return _policy_check(args.dir, _tenancy_files(args))
            if args.policy_command == "explain":
                return _policy_explain(args.dir, args.state)
            return _policy_test(args.dir)
        if args.command == "replay":
            return _replay(args.file, args.policy, args.until)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "schemas":
            return _schemas(args.dir)
        if args.command == "dlq":
            return _dlq_replay(args)
        if args.command == "apikey":
            return _apikey_new(args.agency, args.label)
        if args.command == "user":
            return _user(args)
        if args.command == "token":
            return _token_add(args)
        if args.command == "oncall":
            from services.oncall_cli import run as run_oncall

            return run_oncall(args)
        if args.command == "silence":
            from services.silence_cli import run as run_silence

            return run_silence(args)
        if args.command == "console":
            from services.console_cli import run as run_console

            return run_console(args)
        if args.command == "report":
            from services.report_cli import run as run_report

            return run_report(args)
    except ValidationError as exc:
        # Settings errors: name the variable and the problem, never the value (it may be a secret).
        for err in exc.errors(include_input=False, include_url=False):
            name = "CAREALERT_" + ".".join(str(p) for p in err["loc"]).upper()
            sys.stderr.write(f"carealert: {name}: {err['msg']}\n")
        return 2
    except (KafkaUnavailable, ApiKeysInvalid) as exc:
        sys.stderr.write(f"carealert: {exc}\n")
        return 3
    except ValueError as exc:  # PolicyInvalid, RoutingInvalid, MissingSecret, template errors
        sys.stderr.write(f"carealert: {exc}\n")
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
