"""Where benchmark figures go: bench/results/<name>.json, and a table on standard output.

Every result is written with the machine it was measured on and the commit it measured, so a
figure read later says where it came from (docs/bench.md)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    """The first `model name` of /proc/cpuinfo (Linux), else what platform knows, else ''."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict[str, Any]:
    """Cores (all of them, and those this process may run on), CPU model, OS and Python."""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": _cpu_model(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def commit() -> dict[str, Any]:
    """HEAD and whether tracked files differ from it (the figures then measured more than
    the commit); None for each if git can not tell."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": _git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def report(name: str, result: dict[str, Any], shown: list[str] | None = None) -> None:
    """Write `result` with the machine and the commit as bench/results/<name>.json and print
    the `shown` keys (default: all but the timestamp)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    full = {
        "bench": name,
        **result,
        "machine": machine(),
        "commit": commit(),
        "at": result.get("at", datetime.now(UTC).isoformat()),
    }
    target = RESULTS / f"{name}.json"
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps(full, indent=2) + "\n")
    partial.replace(target)  # a reader never sees half a file
    for key in shown or [k for k in result if k != "at"]:
        print(f"{key:<28}{result[key]!s:>12}")
