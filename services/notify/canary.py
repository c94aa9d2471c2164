"""Sending canaries (services/common/canary.py says what they are) and noting their return."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from services.common.canary import CANARY_RULE, canary_event
from services.common.escalations import Escalation
from services.notify.metrics import NotifyMetrics

log = logging.getLogger(__name__)


def canary_returned(esc: Escalation, metrics: NotifyMetrics, now: datetime) -> None:
    """A canary escalation reached notify: note it (nothing is delivered to anyone)."""
    if esc.status != "firing" or esc.rule_id != CANARY_RULE:
        return
    metrics.canary_last.set(now.timestamp())
    if esc.event_accepted_at is not None:
        metrics.canary_round_trip.set(max(0.0, (now - esc.event_accepted_at).total_seconds()))


async def send_canaries(
    client: httpx.AsyncClient,
    ingest_url: str,
    api_key: SecretStr,
    interval_s: float,
    metrics: NotifyMetrics,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Post one canary event to ingest every `interval_s` seconds, until cancelled."""
    # canary_last is not reset here: a notify that keeps restarting must not look alive.
    metrics.canary_interval.set(interval_s)
    seq = int(clock().timestamp())
    url = ingest_url.rstrip("/") + "/v1/events"
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"}
    while True:
        seq += 1
        try:
            response = await client.post(
                url, json=canary_event(seq, clock()), headers=headers, timeout=15
            )
            outcome = "accepted" if response.status_code == 202 else "refused"
            if outcome == "refused":
                log.warning(
                    "ingest refused the canary", extra={"status": str(response.status_code)}
                )
        except httpx.HTTPError as exc:
            outcome = "unreachable"
            log.warning("ingest did not answer the canary", extra={"reason": type(exc).__name__})
        metrics.canaries_sent.labels(outcome).inc()
        await asyncio.sleep(interval_s)
