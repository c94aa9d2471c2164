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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carealert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="run the ingest HTTP service")
    sub.add_parser("rules", help="run the rules worker (faust)")
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
