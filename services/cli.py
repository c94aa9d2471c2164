"""The `carealert` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from services.common.kafka import KafkaUnavailable
from services.ingest.keys import ApiKeysInvalid


def _schemas(out_dir: Path) -> int:
    from services.common.events import EVENT_ADAPTER

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "event.schema.json"
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **EVENT_ADAPTER.json_schema(),
    }
    target.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
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


def _policy_check(directory: Path) -> int:
    from services.rules.policy import PolicyInvalid, load_policy

    try:
        policy = load_policy(directory)
    except PolicyInvalid as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{directory / problem.file}: {problem.path}: {problem.reason}\n")
        sys.stderr.write(f"policy check: {len(exc.problems)} problem(s)\n")
        return 1
    rules = len(policy.rules) + sum(len(r) - len(policy.rules) for r in policy.overlays.values())
    sys.stdout.write(
        f"policy ok: {rules} rules, overlays {', '.join(sorted(policy.overlays)) or 'none'}, "
        f"version {policy.version[:12]}\n"
    )
    return 0


def _policy_test(directory: Path) -> int:
    from services.rules.core import Engine
    from services.rules.policy import PolicyInvalid, load_policy
    from services.rules.scenarios import run_directory

    try:
        policy = load_policy(directory)
    except PolicyInvalid:
        return _policy_check(directory)
    results = run_directory(Engine(policy), directory)
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
    from services.rules.core import Engine
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
            for esc in run.apply(event):
                sys.stdout.write(esc.model_dump_json(exclude_none=True) + "\n")
    if until:
        for esc in run.advance(datetime.fromisoformat(until)):
            sys.stdout.write(esc.model_dump_json(exclude_none=True) + "\n")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carealert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="run the ingest HTTP service")
    sub.add_parser("rules", help="run the rules worker (faust)")
    policy = sub.add_parser("policy", help="check or test the policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="validate rules, overlays, routing, templates")
    check.add_argument("dir", nargs="?", default="rules", type=Path)
    ptest = policy_sub.add_parser("test", help="run the scenario tests in DIR/tests/*.yaml")
    ptest.add_argument("dir", nargs="?", default="rules", type=Path)
    rp = sub.add_parser("replay", help="run events offline, event time as the clock")
    rp.add_argument("file", type=Path, help="JSON lines, one Event per line")
    rp.add_argument("--policy", default="rules", type=Path)
    rp.add_argument("--until", help="advance the clock to this RFC 3339 time at the end")
    schemas = sub.add_parser("schemas", help="export JSON Schema of the Event contract")
    schemas.add_argument("dir", nargs="?", default="docs/schemas", type=Path)
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
        if args.command == "policy":
            if args.policy_command == "check":
                return _policy_check(args.dir)
            return _policy_test(args.dir)
        if args.command == "replay":
            return _replay(args.file, args.policy, args.until)
        if args.command == "schemas":
            return _schemas(args.dir)
        if args.command == "apikey":
            return _apikey_new(args.agency, args.label)
    except (KafkaUnavailable, ApiKeysInvalid) as exc:
        sys.stderr.write(f"carealert: {exc}\n")
        return 3
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
