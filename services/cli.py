"""The `carealert` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from services.common.kafka import KafkaUnavailable
from services.ingest.keys import ApiKeysInvalid


def _schemas(out_dir: Path) -> int:
    from services.common.events import event_json_schema

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "event.schema.json"
    target.write_text(json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {target}\n")
    return 0


def _apikey_new(agency_id: str, label: str) -> int:
    from services.ingest.keys import hash_key, new_key

    key = new_key()
    sys.stdout.write(f"API key (give it to the agency; it is not stored): {key}\n")
    sys.stdout.write("Add to the keys file:\n")
    sys.stdout.write(
        f"  - agency_id: {agency_id}\n    label: {label}\n    sha256: {hash_key(key)}\n"
    )
    return 0


def policy_problems(directory: Path) -> list[str]:
    """Every problem in the policy directory: rules, overlays, risk, routing, templates."""
    from services.notify.config import RoutingInvalid, load_routing
    from services.notify.templates import check_templates
    from services.rules.policy import PolicyInvalid, load_policy

    problems: list[str] = []
    try:
        load_policy(directory)
    except PolicyInvalid as exc:
        problems += [str(p) for p in exc.problems]
    try:
        load_routing(directory / "routing.yaml")
    except RoutingInvalid as exc:
        problems += [str(p) for p in exc.problems]
    problems += check_templates(directory / "templates")
    return problems


def _policy_check(directory: Path) -> int:
    from services.rules.policy import load_policy

    problems = policy_problems(directory)
    if problems:
        for problem in problems:
            sys.stderr.write(f"{directory}/{problem}\n")
        sys.stderr.write(f"policy check: {len(problems)} problem(s)\n")
        return 1
    from services.rules.explain import duty_list

    policy = load_policy(directory)
    rules = len(policy.rules) + sum(len(r) - len(policy.rules) for r in policy.overlays.values())
    sys.stdout.write(
        f"policy ok: {rules} rules, overlays {', '.join(sorted(policy.overlays)) or 'none'}, "
        f"version {policy.version[:12]}\n"
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
        return _policy_check(directory)
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
        return _policy_check(directory)
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
        return _policy_check(directory)
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
        SimConfig(children=args.children, days=args.days, seed=args.seed, agency_id=args.agency)
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
    parser = argparse.ArgumentParser(prog="carealert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="run the ingest HTTP service")
    sub.add_parser("rules", help="run the rules worker (faust)")
    sub.add_parser("notify", help="run the notify worker and its HTTP API")
    sinks = sub.add_parser("sinks", help="run a local SMTP sink and webhook/SMS sink (demo)")
    sinks.add_argument("--smtp-port", type=int, default=2525)
    sinks.add_argument("--http-port", type=int, default=8090)
    sinks.add_argument("--dir", type=Path, default=Path(".run/sink"))
    policy = sub.add_parser("policy", help="check or test the policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="validate rules, overlays, routing, templates")
    check.add_argument("dir", nargs="?", default="rules", type=Path)
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
    return parser


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
        if args.command == "sinks":
            import os

            from services.localdev.sinks import run_sinks

            run_sinks(
                args.smtp_port, args.http_port, args.dir, os.environ.get("CAREALERT_WEBHOOK_SECRET")
            )
            return 0
        if args.command == "policy":
            if args.policy_command == "check":
                return _policy_check(args.dir)
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
