"""A rules worker killed with SIGKILL comes back with its state, and emits no escalation twice.
Its own module: no other rules worker may run beside it, or it would emit the same ids too."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

from kafka import KafkaProducer

from services.common import topics
from tests.integration.services import escalations_for, produce, rules_service
from tests.support import make_event, missing_opened, read_topic, wait_for_records


def test_restart_restores_state_without_duplicate_ids(
    bootstrap: str, log_dir: Path, producer: KafkaProducer, tmp_path: Path
) -> None:
    app_id = f"rules-restart-{uuid.uuid4().hex[:6]}"
    child = f"C-{uuid.uuid4().hex[:8]}"
    svc = rules_service(bootstrap, log_dir, app_id, tmp_path / "data")
    svc.start()
    try:
        produce(producer, missing_opened(child_id=child))
        escalations_for(bootstrap, child, 3)
        # Kill -9 right after the escalations are out: no chance to commit or clean up.
        time.sleep(0.5)
        svc.stop(kill=True)
        produce(
            producer,
            make_event(
                "missing.law_enforcement_reported",
                {
                    "episode_id": "E-1",
                    "le_agency": "KCPD",
                    "report_number": "R-1",
                    "ncic_entry_confirmed": True,
                },
                child_id=child,
            ),
        )
        svc.start()
        # The report resolves the escalation opened before the crash: state came back.
        wait_for_records(
            bootstrap,
            topics.ESCALATIONS,
            lambda r: (
                r.json().get("child_id") == child
                and r.json()["status"] == "resolved"
                and r.json().get("rule_id") == "federal.report-law-enforcement"
            ),
        )
        records = [
            r.json()
            for r in read_topic(bootstrap, topics.ESCALATIONS)
            if r.json().get("child_id") == child
        ]
        counts = Counter((r["escalation_id"], r["status"]) for r in records)
        assert all(n == 1 for n in counts.values()), counts
    finally:
        svc.stop()
