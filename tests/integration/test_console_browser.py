"""The console in a real browser (Debian's chromium, headless, driven by Playwright) against the
real stack: Kafka, ingest, rules, notify with its SMTP sink, and `carealert console serve`
projecting into SQLite. A caseworker signs in, sees a missing child appear on Now without
reloading, opens the escalation, acknowledges it with a note (and the escalation to the director
never comes, while it does for a child nobody acknowledged), adds a note; another agency's user
is told there is no such escalation; an auditor cannot acknowledge; a form without its CSRF token
is refused; an idle session is signed out by itself. Every request the browser makes goes to
127.0.0.1 and the pages break no Content-Security-Policy rule.

Screenshots of Now and of an escalation are saved to docs/images/ (shown in README.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from services.common import topics
from services.common.people import hash_password
from tests.conftest import start_pipeline
from tests.e2e.test_pipeline import post
from tests.integration.notify_support import ACK_SECRET, DIRECTOR, PEOPLE, NotifyStack, text_of
from tests.support import (
    Service,
    ensure_debian_tool,
    free_port,
    make_event,
    missing_opened,
    read_topic,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
PASSWORD = "browser-test-password-7f3a9c"
ACK_TIMEOUT_S = 45  # long enough for the browser to acknowledge first on a slow machine


@dataclass
class Stack:
    ingest: Service
    notify: NotifyStack
    console: Service
    idle_console: Service  # signs out after 5 idle seconds


def console_service(
    bootstrap: str, log_dir: Path, tmp: Path, notify: NotifyStack, users: Path, idle_s: int
) -> Service:
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CAREALERT_DATABASE_URL": f"sqlite:///{tmp / f'console-{port}.db'}",
        "CAREALERT_CONSOLE_PORT": str(port),
        "CAREALERT_POLICY_DIR": str(notify.policy_dir),
        "CAREALERT_USERS_FILE": str(users),
        "CAREALERT_ACK_SECRET": ACK_SECRET,
        "CAREALERT_NOTIFY_URL": notify.service.url,
        "CAREALERT_CONSOLE_IDLE_TIMEOUT_S": str(idle_s),
        "CAREALERT_CONSOLE_REFRESH_S": "1",
    }
    return Service(["console", "serve"], env, port, log_dir)


def people_with_passwords(path: Path) -> Path:
    """notify's test registry (same people), each with PASSWORD."""
    registry = yaml.safe_load(PEOPLE)
    digest = hash_password(PASSWORD)
    for person in registry["people"]:
        person["password_hash"] = digest
    path.write_text(yaml.safe_dump(registry))
    return path


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console-browser")
    ingest, rules, notify = start_pipeline(bootstrap, log_dir, tmp, ack=f"{ACK_TIMEOUT_S}s")
    users = people_with_passwords(tmp / "console-people.yaml")
    console = console_service(bootstrap, log_dir, tmp, notify, users, idle_s=900)
    idle = console_service(bootstrap, log_dir, tmp, notify, users, idle_s=5)
    console.start()
    idle.start()
    for service in (console, idle):
        ready = f"{service.url}/readyz"
        wait_until(lambda: httpx.get(ready).status_code == 200, 120, "readyz")  # noqa: B023
    yield Stack(ingest, notify, console, idle)
    for service in (idle, console, rules, ingest):
        service.stop()
    notify.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = ensure_debian_tool("chromium", "chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Watched:
    """A browser context that lets only 127.0.0.1 through and records what was asked for and
    every Content-Security-Policy complaint."""

    context: BrowserContext
    requested: list[str] = field(default_factory=list)
    csp_errors: list[str] = field(default_factory=list)

    def page(self) -> Page:
        page = self.context.new_page()
        page.on(
            "console",
            lambda m: (
                self.csp_errors.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )
        return page

    def close(self) -> None:
        self.context.close()
        outside = [u for u in self.requested if not u.startswith("http://127.0.0.1:")]
        assert outside == [], f"requests left 127.0.0.1: {outside}"
        assert self.csp_errors == [], self.csp_errors


def watched(browser: Browser, phone: bool = False) -> Watched:
    options = {"viewport": {"width": 390, "height": 844}, "is_mobile": True} if phone else {}
    w = Watched(browser.new_context(**options))  # type: ignore[arg-type]

    def local_only(route: Route) -> None:
        w.requested.append(route.request.url)
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            route.abort()

    w.context.route("**/*", local_only)
    return w


def sign_in(page: Page, console: Service, agency: str, person: str) -> None:
    page.goto(f"{console.url}/login")
    page.get_by_label("Agency").fill(agency)
    page.get_by_label("Staff id").fill(person)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{console.url}/now", page.inner_text("main")


def missing_child(stack: Stack, state: str = "OH") -> str:
    """A child of demo-agency (caseworker W-1, supervisor S-1) reported missing now, in a state
    whose deadlines are 24 h, so only the ack timeout moves the escalation up."""
    child = f"C-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    registered = make_event(
        "child.registered",
        {
            "date_of_birth": "2011-05-01",
            "sex": "female",
            "caseworker_id": "W-1",
            "supervisor_id": "S-1",
        },
        child_id=child,
        state=state,
    )
    opened = missing_opened(child_id=child, at=now)
    opened["jurisdiction"] = {"state": state, "county": "Franklin"}
    post(stack.ingest, registered, opened)
    return child


def director_mails(stack: Stack, child: str) -> list[Any]:
    return [m for m in stack.notify.mails_to(DIRECTOR) if child in text_of(m)]


def test_a_caseworker_sees_a_missing_child_arrive_and_acknowledges_it(
    stack: Stack, browser: Browser, bootstrap: str
) -> None:
    w = watched(browser)
    page = w.page()
    sign_in(page, stack.console, "demo-agency", "W-1")
    acked, ignored = missing_child(stack), missing_child(stack)
    # No reload: the page's own refresh brings the row in.
    rows = page.locator("#now-rows tr", has_text=acked)
    rows.first.wait_for(timeout=60_000)
    assert page.url == f"{stack.console.url}/now"
    assert rows.count() >= 2  # the NCMEC and the law-enforcement duties, at least
    page.locator("#now-rows tr", has_text=ignored).first.wait_for(timeout=60_000)
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "console-now.png"))  # the first screenful

    rows.filter(has_text="NCMEC").first.get_by_role("link", name="NCMEC").click()
    escalation_id = page.url.rsplit("/", 1)[1]
    assert page.get_by_role("heading", level=1).inner_text().startswith("Report")
    expect(page.get_by_text("Deadline")).to_be_visible()
    page.get_by_label("Note with your acknowledgement (optional)").fill("calling the police now")
    page.get_by_role("button", name="Acknowledge").click()
    expect(
        page.get_by_text("Acknowledged. The reminders and escalation for it have stopped.")
    ).to_be_visible()
    page.get_by_label("Add a note (does not acknowledge)").fill("placement says she took a bus")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Your note was added.")).to_be_visible()
    # The projector brings notify's records back to this page.
    for text in ("calling the police now", "placement says she took a bus"):
        wait_until(lambda: text in _reloaded(page), 30, text)  # noqa: B023
    page.screenshot(path=str(IMAGES / "console-escalation.png"), full_page=True)
    page.get_by_role("link", name=acked).click()  # the child's timeline
    expect(page.get_by_text("Reported missing")).to_be_visible()
    expect(page.get_by_text("Duty: Report the missing child to NCMEC").first).to_be_visible()
    # Each view and action is in the audit trail, naming the person and the ids only.
    audit = [r.json() for r in read_topic(bootstrap, topics.AUDIT)]
    mine = {(a["action"], a["object_id"]) for a in audit if a["actor"] == "W-1"}
    for action in ("escalation.view", "escalation.acknowledge", "escalation.note"):
        assert (action, escalation_id) in mine
    assert ("child.view", acked) in mine
    assert not any("calling the police" in json.dumps(a) for a in audit)
    # The compliance report: this agency's measures from the same read model, charts as SVG
    # under the same policy (no inline style or script), no child's id in it.
    page.get_by_role("link", name="Report").click()
    expect(page.get_by_role("heading", name="Compliance report")).to_be_visible()
    expect(page.get_by_role("heading", name="Reported to NCMEC")).to_be_visible()
    assert acked not in page.content()

    # The ignored child's NCMEC duty moves up to the director after the ack timeout; the
    # acknowledged one never does.
    wait_until(
        lambda: any("NCMEC" in str(m["Subject"]) for m in director_mails(stack, ignored)),
        ACK_TIMEOUT_S + 60,
        "the director's mail about the ignored child",
    )
    time.sleep(3)
    assert stack.notify.mails_to(DIRECTOR, escalation_id) == []
    w.close()


def _reloaded(page: Page) -> str:
    page.reload()
    return page.content()


def _escalation_url(stack: Stack, browser: Browser) -> str:
    """The URL of one of demo-agency's open escalations, as its caseworker finds it on Now."""
    w = watched(browser)
    page = w.page()
    sign_in(page, stack.console, "demo-agency", "W-1")
    child = missing_child(stack)
    rows = page.locator("#now-rows tr", has_text=child).filter(has_text="NCMEC")
    link = rows.first.get_by_role("link", name="NCMEC")
    link.wait_for(timeout=60_000)
    url = f"{stack.console.url}{link.get_attribute('href')}"
    w.close()
    return url


def test_another_agencys_user_is_told_there_is_no_such_escalation(
    stack: Stack, browser: Browser
) -> None:
    url = _escalation_url(stack, browser)
    w = watched(browser)
    page = w.page()
    sign_in(page, stack.console, "other-agency", "W-1")  # same staff id, other agency
    answer = page.goto(url)
    assert answer is not None and answer.status == 404
    expect(page.get_by_text("Your agency has no escalation with this id.")).to_be_visible()
    unknown = page.goto(f"{stack.console.url}/escalations/no-such-escalation")
    assert unknown is not None and unknown.status == 404
    w.close()


def test_an_auditor_reads_but_cannot_acknowledge(stack: Stack, browser: Browser) -> None:
    url = _escalation_url(stack, browser)
    w = watched(browser)
    page = w.page()
    sign_in(page, stack.console, "demo-agency", "A-1")
    page.goto(url)
    expect(page.get_by_text("Your account reads only")).to_be_visible()
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    answer = w.context.request.post(f"{url}/ack", form={"csrf": csrf, "note": "x"})
    assert answer.status == 403
    w.close()


def test_a_form_without_its_csrf_token_is_refused(
    stack: Stack, browser: Browser, bootstrap: str
) -> None:
    url = _escalation_url(stack, browser)
    w = watched(browser)
    page = w.page()
    sign_in(page, stack.console, "demo-agency", "W-1")
    page.goto(url)
    answer = w.context.request.post(f"{url}/ack", form={"note": "no token"})
    assert answer.status == 403
    assert "did not come from your console session" in answer.text()
    # Refused before notify was asked: nothing of this escalation is in care.acks.v1.
    escalation_id = url.rsplit("/", 1)[1]
    assert [
        r for r in read_topic(bootstrap, topics.ACKS) if escalation_id in r.value.decode()
    ] == []
    w.close()


def test_an_idle_session_is_signed_out_by_itself(stack: Stack, browser: Browser) -> None:
    w = watched(browser, phone=True)  # and the pages work on a phone-sized screen
    page = w.page()
    sign_in(page, stack.idle_console, "demo-agency", "W-1")
    expect(page.get_by_role("heading", name="Now")).to_be_visible()
    # Nobody touches the page; its refresh (every second) does not keep the session alive.
    page.wait_for_url("**/login?expired=1", timeout=30_000)
    expect(page.get_by_text("You were signed out after")).to_be_visible()
    page.goto(f"{stack.idle_console.url}/now")
    assert "/login" in page.url
    w.close()
