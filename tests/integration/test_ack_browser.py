"""A person's path through the pages, in headless Chromium (Debian's, driven by Playwright):
the mail as the demo sink saves it, its ack link, the ack page, the button, the answer page.
Nothing is loaded from anywhere but the local file and notify on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from playwright.sync_api import Browser, Route, sync_playwright

from tests.integration.notify_support import (
    CASEWORKER,
    OPERATOR_TOKEN,
    NotifyStack,
    publish,
    start_stack,
)
from tests.support import ensure_debian_tool, make_escalation, wait_until


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = ensure_debian_tool("chromium", "chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def saving_stack(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NotifyStack, Path]]:
    tmp = tmp_path_factory.mktemp("browser")
    stack = start_stack(bootstrap, log_dir, tmp, mail_folder=tmp / "mail")
    yield stack, tmp / "mail"
    stack.stop()


def test_a_caseworker_reads_the_mail_follows_its_link_and_acknowledges(
    browser: Browser, saving_stack: tuple[NotifyStack, Path], producer: KafkaProducer
) -> None:
    stack, folder = saving_stack
    esc = make_escalation(recipients=["caseworker"])
    publish(producer, esc)
    wait_until(lambda: bool(stack.mails_to(CASEWORKER, esc.escalation_id)), 30, "mail")
    wait_until(lambda: (folder / "index.html").exists(), 10, "the sink's index")

    requested: list[str] = []

    def local_only(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if url.startswith(("file://", "http://127.0.0.1:")):
            route.continue_()
        else:
            route.abort()

    context = browser.new_context()
    context.route("**/*", local_only)
    page = context.new_page()
    page.goto((folder / "index.html").as_uri())
    page.get_by_role("link", name="Report the missing child to NCMEC").first.click()
    assert page.get_by_text("Due").first.is_visible()
    page.get_by_role("link", name="/ack?").first.click()  # the ack link in the mail

    assert page.get_by_role("heading", name="Acknowledge this alert").is_visible()
    assert "the reminders stop" in page.content()
    page.get_by_label("Note (optional, for your agency)").fill("calling the police now")
    page.get_by_role("button", name="Acknowledge").click()
    assert page.get_by_role("heading", name="Acknowledged").is_visible()
    assert "Reminders and escalation for it have stopped." in page.content()
    page.go_back()  # the form again, sent twice: the first acknowledgement stands
    page.get_by_role("button", name="Acknowledge").click()
    assert "You acknowledged this" in page.content()
    context.close()

    assert requested and all(u.startswith(("file://", "http://127.0.0.1:")) for u in requested)
    detail = httpx.get(
        f"{stack.service.url}/v1/escalations/{esc.escalation_id}",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    ).json()
    assert [(a["by"], a["via"], a.get("note")) for a in detail["acks"]] == [
        ("W-1", "link", "calling the police now")
    ]
    assert detail["status"] == "acknowledged"


def test_an_expired_or_altered_link_says_why_in_the_browser(
    browser: Browser, saving_stack: tuple[NotifyStack, Path], producer: KafkaProducer
) -> None:
    stack, _ = saving_stack
    esc = make_escalation(recipients=["caseworker"])
    publish(producer, esc)
    wait_until(lambda: bool(stack.mails_to(CASEWORKER, esc.escalation_id)), 30, "mail")
    url = (
        f"{stack.service.url}/v1/escalations/{esc.escalation_id}/ack"
        "?receiver=caseworker&person=S-1&token=1.0123456789abcdef0123456789abcdef"
    )
    page = browser.new_page()
    answer = page.goto(url)
    assert answer is not None and answer.status == 403
    assert page.get_by_role("heading", name="Not acknowledged").is_visible()
    assert page.get_by_role("button").count() == 0
    page.close()
