"""Run every benchmark (`make bench`), each in a process session of its own, and clean up.

    .venv/bin/python -m bench.run_all [--only NAME ...] [--timeout SECONDS] [--list]

A benchmark that fails does not stop the others; at the end the exit status is 1 and the
failed ones are named. Every process a benchmark started (its brokers, services, databases,
load generators) is stopped when it ends, however it ends, and on Ctrl-C or SIGTERM of this
runner: first SIGINT to the benchmark (its `finally` blocks stop what it started), then
SIGTERM and SIGKILL to whatever is left. "Left" means in the benchmark's session or carrying
its run marker in the environment, so a daemon that started a session of its own (pg_ctl's
postgres) is found too; such leftovers are named in the summary as leaks.
bench/results/run_all.json records what ran, its status and duration (docs/bench.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import report  # noqa: E402

MARKER = "CAREALERT_BENCH_RUN"
GRACE_S = 90.0  # after SIGINT: time for a benchmark's finally blocks (stopping a broker)
TERM_S = 10.0  # after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]


BENCHES: tuple[Bench, ...] = (
    Bench("ingest", ("bench.ingest",)),
    Bench("rules-1w", ("bench.rules", "--events", "30000")),
    Bench("rules-2w", ("bench.rules", "--events", "30000", "--workers", "2")),
    Bench("notify-burst", ("bench.notify", "--escalations", "1000")),
    Bench("notify-100", ("bench.notify", "--escalations", "1000", "--rate", "100")),
    Bench("e2e", ("bench.e2e", "--events", "300", "--rate", "20")),
    Bench("console", ("bench.console",)),
    Bench("report_db", ("bench.report_db", "--postgres")),
    Bench("replay", ("bench.replay",)),
    Bench("state_size", ("bench.state_size",)),
)


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the runner."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _marked(marker: str, session: int) -> list[int]:
    """Live processes in `session` or with `MARKER=marker` in their environment."""
    found: list[int] = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z":
                continue
            if int(fields[3]) == session or needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(pid)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return found


def _describe(pid: int) -> str:
    try:
        cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError:
        return str(pid)
    return f"{pid} {cmd.decode(errors='replace')[:120]}"


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(marker: str, session: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = _marked(marker, session)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _marked(marker, session)
    return left


def _clean_up(proc: subprocess.Popen[bytes], marker: str) -> list[str]:
    """Stop the benchmark `proc` if it still runs and every process it left; returns the
    leftovers found after it ended (leaks), described."""
    # A second Ctrl-C waits until this is done (it is then raised), never cuts it short.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return _stop_everything(proc, marker)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _stop_everything(proc: subprocess.Popen[bytes], marker: str) -> list[str]:
    session = proc.pid  # start_new_session: the child leads a session of its own
    if proc.poll() is None:
        _signal_all([proc.pid], signal.SIGINT)
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    leaks = _marked(marker, session)
    described = [_describe(pid) for pid in leaks]
    if leaks:
        _signal_all(leaks, signal.SIGTERM)
        left = _wait_gone(marker, session, TERM_S)
        _signal_all(left, signal.SIGKILL)
        _wait_gone(marker, session, TERM_S)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return described


def _run(bench: Bench, timeout_s: float) -> tuple[str, float, list[str]]:
    """(status, seconds, leaks): status `ok`, `failed (exit N)` or `timed out`."""
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER: marker}
    started = time.monotonic()
    print(f"== {bench.name}: python -m {' '.join(bench.args)}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", *bench.args], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        try:
            code = proc.wait(timeout=timeout_s)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = "timed out"
    finally:
        leaks = _clean_up(proc, marker)
    return status, round(time.monotonic() - started, 1), leaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only these")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    if args.list:
        for bench in BENCHES:
            print(f"{bench.name:<14} python -m {' '.join(bench.args)}")
        return 0
    unknown = set(args.only or ()) - {b.name for b in BENCHES}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))} (see --list)")
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    runs: dict[str, dict[str, object]] = {}
    interrupted: Interrupted | None = None
    for bench in chosen:
        try:
            status, seconds, leaks = _run(bench, args.timeout)
        except Interrupted as exc:  # _run's finally has cleaned up the one running
            interrupted = exc
            runs[bench.name] = {"status": f"interrupted ({exc})"}
            break
        runs[bench.name] = {"status": status, "seconds": seconds, "leaked": leaks}
        print(f"== {bench.name}: {status} in {seconds} s", flush=True)
        for leak in leaks:
            print(f"   left running, now stopped: {leak}", flush=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the summary is written whatever comes now
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    failed = [name for name, run in runs.items() if run["status"] != "ok"]
    report("run_all", {"runs": runs, "failed": failed}, ["failed"])
    if interrupted is not None:
        print(f"bench: interrupted by {interrupted}; all processes stopped", file=sys.stderr)
        return 128 + interrupted.signum
    if failed:
        print(f"bench: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"bench: all {len(runs)} ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
