"""Where benchmark figures go: bench/results/<name>.json, and a table on standard output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def report(name: str, result: dict[str, Any], shown: list[str] | None = None) -> None:
    """Write `result` as JSON and print the `shown` keys (default: all but the timestamp)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    for key in shown or [k for k in result if k != "at"]:
        print(f"{key:<28}{result[key]!s:>12}")
