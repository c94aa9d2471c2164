"""Ingest and notify serve HTTPS themselves when given a certificate (made here with openssl);
plain HTTP then gets nothing, and ack links use https:// because the public URL does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from tests.integration.notify_support import ack_link, publish, start_stack, wait_until_mail
from tests.integration.services import AUTH, ingest_service
from tests.support import make_escalation, missing_opened, self_signed_certificate, trusting


def test_ingest_serves_https_and_not_plain_http(
    bootstrap: str, log_dir: Path, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    svc = ingest_service(bootstrap, log_dir, tls=(cert, key))
    svc.start()
    try:
        assert svc.url.startswith("https://")
        r = httpx.post(
            f"{svc.url}/v1/events",
            json=missing_opened(),
            headers=AUTH,
            verify=trusting(cert),
            timeout=30,
        )
        assert r.status_code == 202, r.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{svc.port}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError):  # an unknown certificate is refused by clients
            httpx.get(f"{svc.url}/healthz", timeout=5)
    finally:
        svc.stop()


def test_notify_serves_https_and_its_ack_links_use_it(
    bootstrap: str, log_dir: Path, tmp_path: Path, producer: KafkaProducer
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    stack = start_stack(bootstrap, log_dir, tmp_path, tls=(cert, key))
    try:
        esc = make_escalation()
        publish(producer, esc)
        link = ack_link(wait_until_mail(stack, esc.escalation_id))
        assert link.startswith(f"https://127.0.0.1:{stack.service.port}/v1/escalations/")
        r = httpx.post(link, verify=trusting(cert), timeout=30)
        assert r.status_code == 202, r.text
    finally:
        stack.stop()
