"""A worker whose partition stops moving while records wait is seen and restarted: each worker's
fetching is paused through its test hook (CAREALERT_STALL_FAULT_FILE), records are published,
and the worker must report the stall on /metrics, fail /healthz and /readyz, and exit with
STALL_EXIT_CODE for its supervisor to start it again."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx
from kafka import KafkaProducer

from services.common.stallwatch import STALL_EXIT_CODE
from tests.integration.notify_support import publish, start_stack
from tests.integration.services import (
    STALL_ENV,
    escalations_for,
    produce,
    rules_service,
    stalled_gauge,
)
from tests.support import ROOT, Service, make_escalation, missing_opened, wait_until


def see_the_stall_then_the_exit(service: Service, gauge: str) -> None:
    """The stall shows on every surface during the grace period, then the process exits."""
    wait_until(lambda: stalled_gauge(service, gauge) >= 1, 60, f"{gauge} >= 1")
    health = httpx.get(f"{service.url}/healthz", timeout=2)
    ready = httpx.get(f"{service.url}/readyz", timeout=2)
    assert health.status_code == 503, health.text
    assert "stalled" in health.text
    assert ready.status_code == 503, ready.text
    assert "stalled" in service.log_text()
    assert service.proc is not None
    wait_until(lambda: service.proc is not None and service.proc.poll() is not None, 30, "exit")
    assert service.proc.returncode == STALL_EXIT_CODE


def test_a_stalled_rules_worker_turns_unhealthy_and_exits(
    bootstrap: str, log_dir: Path, tmp_path: Path, producer: KafkaProducer
) -> None:
    fault = tmp_path / "pause"
    rules = rules_service(
        bootstrap,
        log_dir,
        f"rules-stall-{uuid.uuid4().hex[:6]}",
        tmp_path / "rules",
        CAREALERT_STALL_FAULT_FILE=str(fault),
        **STALL_ENV,
    )
    rules.start()
    try:
        first = missing_opened()
        produce(producer, first)
        escalations_for(bootstrap, first["child_id"], 1)
        assert stalled_gauge(rules, "carealert_rules_stalled_partitions") == 0
        # Quiet and caught up for longer than the stall timeout: not a stall.
        time.sleep(5)
        assert stalled_gauge(rules, "carealert_rules_stalled_partitions") == 0
        assert httpx.get(f"{rules.url}/healthz", timeout=2).status_code == 200
        fault.touch()
        wait_until(lambda: "fetching paused" in rules.log_text(), 30, "the pause")
        for _ in range(12):
            produce(producer, missing_opened())
        see_the_stall_then_the_exit(rules, "carealert_rules_stalled_partitions")
    finally:
        rules.stop(kill=True)
    # Started again without the fault, the waiting records are evaluated.
    fault.unlink()
    rules.start()
    try:
        late = missing_opened()
        produce(producer, late)
        escalations_for(bootstrap, late["child_id"], 1)
    finally:
        rules.stop()


def test_a_stalled_notify_worker_turns_unhealthy_and_exits(
    bootstrap: str, log_dir: Path, tmp_path: Path, producer: KafkaProducer
) -> None:
    fault = tmp_path / "pause"
    stack = start_stack(
        bootstrap,
        log_dir,
        tmp_path,
        CAREALERT_STALL_FAULT_FILE=str(fault),
        CAREALERT_STALL_TIMEOUT_S="4",
        CAREALERT_STALL_CHECK_INTERVAL_S="0.5",
        CAREALERT_STALL_EXIT_GRACE_S="6",
    )
    try:
        first = make_escalation()
        publish(producer, first)
        wait_until(
            lambda: bool(stack.mails_to("alex@agency.example", first.escalation_id)), 30, "mail"
        )
        fault.touch()
        wait_until(lambda: "fetching paused" in stack.service.log_text(), 30, "the pause")
        for _ in range(12):
            publish(producer, make_escalation())
        see_the_stall_then_the_exit(stack.service, "carealert_notify_stalled_partitions")
    finally:
        stack.stop()


def test_the_local_supervisor_starts_an_exited_worker_again_and_stops_with_it(
    tmp_path: Path,
) -> None:
    """deploy/local/supervise.sh (what `make run` runs each service under)."""
    marker = tmp_path / "exited-once"
    script = f"if [ ! -f {marker} ]; then touch {marker}; exit {STALL_EXIT_CODE}; fi; exec sleep 60"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        sup = subprocess.Popen(
            [str(ROOT / "deploy/local/supervise.sh"), "worker", "bash", "-c", script],
            stdout=out,
            stderr=out,
        )
    try:
        wait_until(lambda: "starting it again" in log.read_text(), 20, "the restart line")
        assert f"worker exited with status {STALL_EXIT_CODE}" in log.read_text()
        wait_until(lambda: bool(children(sup.pid)), 10, "the second start")
        second = children(sup.pid)
        sup.terminate()
        assert sup.wait(timeout=20) == 0
        wait_until(
            lambda: all(not Path(f"/proc/{pid}").exists() for pid in second), 10, "worker gone"
        )
    finally:
        sup.kill()


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]
