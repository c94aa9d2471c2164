"""The console's pages over HTTP (FastAPI's test client) on a SQLite read model, with in-memory
twins of notify (the recorder) and the audit trail: sign-in, sessions, CSRF, lockout, agency
scoping, roles, headers. The browser tests (tests/integration/test_console_browser.py) run the
same pages against the real stack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession

from services.common.audit import AuditRecord
from services.common.people import People, Person, hash_password
from services.console.acking import Answer
from services.console.context import Console
from services.console.db import make_engine, migrate
from services.console.models import AckRow, ChildEventRow, EscalationRow, SilenceRow
from services.console.registry import Registry
from services.console.sessions import Lockout, Sessions
from services.console.web import create_app
from services.notify.config import load_routing

SESSION_COOKIE = "carealert_session"  # over plain HTTP (over HTTPS: __Host-carealert_session)

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
_HASH = hash_password(PASSWORD)


def _person(agency: str, pid: str, roles: tuple[str, ...]) -> Person:
    return Person.model_validate(
        {
            "id": pid,
            "agency_id": agency,
            "name": f"Person {pid}",
            "roles": list(roles),
            "password_hash": _HASH,
        }
    )


@dataclass
class FakeRecorder:
    calls: list[tuple[str, ...]] = field(default_factory=list)

    async def acknowledge(
        self, agency_id: str, person_id: str, escalation_id: str, note: str | None
    ) -> Answer:
        self.calls.append(("ack", agency_id, person_id, escalation_id, note or ""))
        return Answer("recorded", stops=True)

    async def add_note(
        self, agency_id: str, person_id: str, escalation_id: str, note: str, note_id: str
    ) -> Answer:
        self.calls.append(("note", agency_id, person_id, escalation_id, note, note_id))
        return Answer("recorded")


@dataclass
class FakeAudit:
    records: list[AuditRecord] = field(default_factory=list)
    broken: bool = False

    async def __call__(self, record: AuditRecord) -> None:
        if self.broken:
            raise ConnectionError("kafka away")
        self.records.append(record)


@dataclass
class Clock:
    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at


def _escalation(esc_id: str, agency: str, due_in_min: int) -> EscalationRow:
    return EscalationRow(
        escalation_id=esc_id,
        agency_id=agency,
        child_id=f"child-{esc_id}",
        episode_id=None,
        rule_id="mo.missing.report-le",
        severity="critical",
        status="firing",
        action="Report the missing child to law enforcement",
        state="MO",
        county="Jackson",
        caseworker_id="W-1",
        supervisor_id="S-1",
        due_at=NOW + timedelta(minutes=due_in_min),
        fired_at=NOW - timedelta(minutes=5),
        resolved_at=None,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    migrate(eng)
    with DbSession(eng) as s:
        s.add_all(
            [_escalation("esc-mo-1", "mo-jackson", 90), _escalation("esc-tx-1", "tx-el-paso", 30)]
        )
        s.add_all(
            [
                ChildEventRow(
                    agency_id="mo-jackson",
                    event_id="ev-1",
                    child_id="child-esc-mo-1",
                    episode_id="E-1",
                    event_type="screening.completed",
                    occurred_at=NOW - timedelta(hours=1),
                    detail="clear_concern",
                ),
                ChildEventRow(
                    agency_id="mo-jackson",
                    event_id="ev-2",
                    child_id="child-esc-mo-1",
                    episode_id="E-1",
                    event_type="return.crime_disclosed",
                    occurred_at=NOW - timedelta(minutes=50),
                    detail=None,
                ),
                ChildEventRow(
                    agency_id="mo-jackson",
                    event_id="ev-3",
                    child_id="child-esc-mo-1",
                    episode_id="E-1",
                    event_type="missing.located",
                    occurred_at=NOW - timedelta(minutes=40),
                    detail=None,
                ),
            ]
        )
        for agency, sid in (("mo-jackson", "sil-mo"), ("tx-el-paso", "sil-tx")):
            s.add(
                SilenceRow(
                    silence_id=sid,
                    agency_id=agency,
                    kind="silence",
                    receiver=None,
                    matchers='[{"label": "rule_id", "op": "=", "value": "risk.tier-changed"}]',
                    starts_at=NOW - timedelta(hours=1),
                    ends_at=NOW + timedelta(hours=1),
                    reason=f"review day {agency}",
                    created_by="O-1",
                    created_at=NOW - timedelta(hours=1),
                    expired_at=None,
                    expired_by=None,
                )
            )
        s.commit()
    yield eng
    eng.dispose()


@dataclass
class Stack:
    client: TestClient
    recorder: FakeRecorder
    audit: FakeAudit
    clock: Clock


@pytest.fixture
def stack(engine: Engine) -> Stack:
    people = People(
        [
            _person("mo-jackson", "W-1", ("caseworker",)),
            _person("mo-jackson", "A-1", ("auditor",)),
            _person("mo-jackson", "S-1", ("supervisor",)),
            _person("mo-jackson", "O-1", ("operator",)),
            _person("tx-el-paso", "W-1", ("caseworker",)),
        ]
    )
    recorder, audit, clock = FakeRecorder(), FakeAudit(), Clock()
    console = Console(
        engine=engine,
        routing=load_routing(Path("rules/routing.yaml")),
        staff=Registry(None, people=people),
        recorder=recorder,
        audit=audit,
        sessions=Sessions(idle_s=900),
        lockout=Lockout(failures=3, window_s=900),
        now=clock,
    )
    return Stack(TestClient(create_app(console), follow_redirects=False), recorder, audit, clock)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient, agency: str, person: str, password: str = PASSWORD) -> int:
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"agency": agency, "person": person, "password": password, "csrf": _csrf(page.text)},
    )
    return int(answer.status_code)


def test_pages_need_a_session_and_sign_in_works(stack: Stack) -> None:
    c = stack.client
    assert c.get("/now").headers["location"].startswith("/login")
    assert c.get("/now/rows").status_code == 401
    assert sign_in(c, "mo-jackson", "W-1") == 303
    cookie = c.cookies.get(SESSION_COOKIE)
    assert cookie
    page = c.get("/now")
    assert page.status_code == 200
    assert "esc-mo-1" in page.text and "esc-tx-1" not in page.text
    assert [r.action for r in stack.audit.records] == ["console.sign_in"]


def test_every_answer_forbids_inline_script_and_framing(stack: Stack) -> None:
    answer = stack.client.get("/login")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["cache-control"] == "no-store"
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert "<script>" not in answer.text and "style=" not in answer.text


def test_session_cookie_is_httponly_and_strict(stack: Stack) -> None:
    c = stack.client
    page = c.get("/login")
    answer = c.post(
        "/login",
        data={
            "agency": "mo-jackson",
            "person": "W-1",
            "password": PASSWORD,
            "csrf": _csrf(page.text),
        },
    )
    cookies = answer.headers.get_list("set-cookie")
    session = next(h for h in cookies if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session


def test_wrong_password_then_lockout_says_nothing_of_who_exists(stack: Stack) -> None:
    c = stack.client
    assert sign_in(c, "mo-jackson", "W-1", "wrong password here") == 401
    assert sign_in(c, "mo-jackson", "nobody", "wrong password here") == 401
    for _ in range(3):
        sign_in(c, "mo-jackson", "nobody", "wrong password here")
    page = c.get("/login")
    locked = c.post(
        "/login",
        data={
            "agency": "mo-jackson",
            "person": "nobody",
            "password": PASSWORD,
            "csrf": _csrf(page.text),
        },
    )
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text
    for _ in range(2):
        assert sign_in(c, "mo-jackson", "W-1", "wrong password here") == 401
    assert sign_in(c, "mo-jackson", "W-1") == 429  # locked even with the right password
    stack.clock.at += timedelta(minutes=16)
    assert sign_in(c, "mo-jackson", "W-1") == 303


def test_a_sign_in_form_without_its_token_is_refused(stack: Stack) -> None:
    c = stack.client
    c.get("/login")
    answer = c.post(
        "/login",
        data={"agency": "mo-jackson", "person": "W-1", "password": PASSWORD, "csrf": "forged"},
    )
    assert answer.status_code == 403
    assert c.cookies.get(SESSION_COOKIE) is None


def test_a_post_without_the_sessions_csrf_token_does_nothing(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    answer = c.post("/escalations/esc-mo-1/ack", data={"note": "x"})
    assert answer.status_code == 403 and "did not come from your console session" in answer.text
    answer = c.post("/escalations/esc-mo-1/ack", data={"note": "x", "csrf": "guess"})
    assert answer.status_code == 403
    page = c.get("/escalations/esc-mo-1")
    cross = c.post(
        "/escalations/esc-mo-1/ack",
        data={"csrf": _csrf(page.text)},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert stack.recorder.calls == []


def test_acknowledge_and_note_go_to_notify_as_the_signed_in_person(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/escalations/esc-mo-1")
    assert page.status_code == 200 and "Acknowledge" in page.text
    csrf = _csrf(page.text)
    note_id = re.search(r'name="note_id" value="([0-9a-f]{32})"', page.text)
    assert note_id
    done = c.post("/escalations/esc-mo-1/ack", data={"csrf": csrf, "note": "calling\nthe police"})
    assert done.status_code == 303 and done.headers["location"] == "/escalations/esc-mo-1"
    shown = c.get("/escalations/esc-mo-1").text
    assert "Acknowledged. The reminders and escalation for it have stopped." in shown
    assert "Acknowledged. The reminders" not in c.get("/escalations/esc-mo-1").text  # once
    noted = c.post(
        "/escalations/esc-mo-1/note",
        data={"csrf": csrf, "note": "spoke to placement", "note_id": note_id.group(1)},
    )
    assert noted.status_code == 303
    assert stack.recorder.calls == [
        ("ack", "mo-jackson", "W-1", "esc-mo-1", "calling the police"),
        ("note", "mo-jackson", "W-1", "esc-mo-1", "spoke to placement", note_id.group(1)),
    ]
    actions = [(r.action, r.actor, r.object_id) for r in stack.audit.records]
    assert ("escalation.view", "W-1", "esc-mo-1") in actions
    assert ("escalation.acknowledge", "W-1", "esc-mo-1") in actions
    assert ("escalation.note", "W-1", "esc-mo-1") in actions


def test_another_agencys_escalation_is_not_found_like_an_unknown_one(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    foreign = c.get("/escalations/esc-tx-1")
    unknown = c.get("/escalations/no-such-id")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.text == unknown.text
    page = c.get("/escalations/esc-mo-1")
    acted = c.post("/escalations/esc-tx-1/ack", data={"csrf": _csrf(page.text)})
    assert acted.status_code == 404 and stack.recorder.calls == []
    assert c.get("/children/child-esc-tx-1").status_code == 404


def test_the_same_staff_id_in_another_agency_sees_only_its_own(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "tx-el-paso", "W-1")
    page = c.get("/now")
    assert "esc-tx-1" in page.text and "esc-mo-1" not in page.text


def test_an_auditor_reads_but_cannot_acknowledge(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "A-1")
    page = c.get("/escalations/esc-mo-1")
    assert page.status_code == 200
    assert 'action="/escalations/esc-mo-1/ack"' not in page.text
    assert "reads only" in page.text
    refused = c.post("/escalations/esc-mo-1/ack", data={"csrf": _csrf(page.text)})
    assert refused.status_code == 403
    assert stack.recorder.calls == []


def test_idle_sessions_end_and_the_live_refresh_does_not_keep_them_alive(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    for _ in range(20):  # 20 × 1 min of the Now page refreshing itself, nobody touching it
        stack.clock.at += timedelta(minutes=1)
        if c.get("/now/rows").status_code != 200:
            break
    assert c.get("/now/rows").status_code == 401
    assert c.get("/now").headers["location"] == "/login?expired=1"


def test_activity_keeps_a_session(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    for _ in range(4):
        stack.clock.at += timedelta(minutes=10)
        assert c.get("/now").status_code == 200


def test_nothing_is_shown_when_the_audit_trail_cannot_be_written(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    stack.audit.broken = True
    answer = c.get("/escalations/esc-mo-1")
    assert answer.status_code == 503
    assert "Report the missing child" not in answer.text


def test_bad_filters_and_notes_are_named_not_echoed(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    bad = c.get("/now", params={"severity": "<script>x</script>"})
    assert bad.status_code == 422 and "severity" in bad.text and "<script>x" not in bad.text
    page = c.get("/escalations/esc-mo-1")
    long_note = c.post(
        "/escalations/esc-mo-1/ack", data={"csrf": _csrf(page.text), "note": "secret-" * 100}
    )
    assert long_note.status_code == 422 and "note" in long_note.text
    assert "secret-secret" not in long_note.text


def test_sign_out_ends_the_session(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/now")
    token = c.cookies.get(SESSION_COOKIE)
    out = c.post("/logout", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303
    c.cookies.set(SESSION_COOKIE, token or "")
    assert c.get("/now").status_code == 303


def test_a_childs_timeline_shows_each_role_what_it_may_see(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    full = c.get("/children/child-esc-mo-1")
    assert full.status_code == 200
    assert "Trafficking screening done (clear concern)" in full.text
    assert "A crime was disclosed" in full.text and "Located" in full.text
    assert "Duty: Report the missing child to law enforcement" in full.text
    assert ("child.view", "child-esc-mo-1") in [
        (r.action, r.object_id) for r in stack.audit.records
    ]
    c.cookies.clear()
    sign_in(c, "mo-jackson", "S-1")
    summary = c.get("/children/child-esc-mo-1")
    assert "Trafficking screening done" in summary.text
    assert "clear concern" not in summary.text and "crime" not in summary.text
    c.cookies.clear()
    sign_in(c, "mo-jackson", "O-1")
    assert c.get("/children/child-esc-mo-1").status_code == 403


def test_another_agencys_child_and_silences_are_not_shown(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    assert c.get("/children/child-esc-tx-1").status_code == 404
    page = c.get("/silences")
    assert "review day mo-jackson" in page.text and "rule_id is risk.tier-changed" in page.text
    assert "review day tx-el-paso" not in page.text


def test_on_call_page_names_who_is_on_call(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/oncall")
    assert page.status_code == 200 and "On call now:" in page.text


def test_now_filters_by_the_agencys_own_rules_and_severity(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/now")
    assert '<option value="mo.missing.report-le"' in page.text
    assert 'href="/children/child-esc-mo-1"' in page.text
    assert "esc-mo-1" in c.get("/now", params={"rule": "mo.missing.report-le"}).text
    assert "esc-mo-1" not in c.get("/now", params={"rule": "other.rule"}).text
    assert "esc-mo-1" not in c.get("/now", params={"severity": "low"}).text
    assert "esc-mo-1" in c.get("/now/rows", params={"mine": "1"}).text


def test_once_the_viewer_acknowledged_the_page_says_so_and_offers_notes_only(
    stack: Stack, engine: Engine
) -> None:
    with DbSession(engine) as s:
        s.add(
            AckRow(
                escalation_id="esc-mo-1",
                who="W-1",
                receiver="console",
                person_id="W-1",
                person_agency_id="mo-jackson",
                via="console",
                stops=True,
                acked_at=NOW,
                note="on my way",
                kind=None,
            )
        )
        s.commit()
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/escalations/esc-mo-1")
    assert "You acknowledged this." in page.text and "on my way" in page.text
    assert 'action="/escalations/esc-mo-1/ack"' not in page.text
    assert 'action="/escalations/esc-mo-1/note"' in page.text


def _console(engine: Engine, people: People, **kw: Any) -> tuple[Console, FakeRecorder, FakeAudit]:
    recorder, audit = FakeRecorder(), FakeAudit()
    console = Console(
        engine=engine,
        routing=load_routing(Path("rules/routing.yaml")),
        staff=kw.pop("staff", None) or Registry(None, people=people),
        recorder=recorder,
        audit=audit,
        sessions=Sessions(idle_s=900),
        lockout=Lockout(failures=3, window_s=900),
        now=kw.pop("now", Clock()),
        **kw,
    )
    return console, recorder, audit


def test_over_https_the_cookie_is_secure_host_only_and_forms_come_from_the_public_origin(
    engine: Engine,
) -> None:
    people = People([_person("mo-jackson", "W-1", ("caseworker",))])
    console, recorder, _ = _console(
        engine, people, secure_cookies=True, origin="https://console.example"
    )
    c = TestClient(create_app(console), base_url="https://console.example", follow_redirects=False)
    page = c.get("/login")
    assert "Secure" in page.headers["set-cookie"]
    answer = c.post(
        "/login",
        data={
            "agency": "mo-jackson",
            "person": "W-1",
            "password": PASSWORD,
            "csrf": _csrf(page.text),
        },
        headers={"Origin": "https://console.example"},
    )
    assert answer.status_code == 303
    session = next(h for h in answer.headers.get_list("set-cookie") if "carealert_session" in h)
    assert session.startswith("__Host-carealert_session=") and "Secure" in session
    esc = c.get("/escalations/esc-mo-1")
    elsewhere = c.post(
        "/escalations/esc-mo-1/ack",
        data={"csrf": _csrf(esc.text)},
        headers={"Origin": "http://console.example"},  # not the public origin
    )
    assert elsewhere.status_code == 403 and recorder.calls == []


def test_sessions_end_after_twelve_hours_whatever_happens(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    for _ in range(13):
        stack.clock.at += timedelta(minutes=59)
        if c.get("/now").status_code != 200:
            break
    assert c.get("/now").status_code == 303
    assert stack.clock.at - NOW <= timedelta(hours=12, minutes=59)


def _registry_file(path: Path, roles: list[str], password: str = PASSWORD) -> None:
    entry = {
        "id": "W-1",
        "agency_id": "mo-jackson",
        "name": "Alex Rivera",
        "roles": roles,
        "password_hash": _HASH if password == PASSWORD else hash_password(password),
    }
    path.write_text(yaml.safe_dump({"version": 1, "people": [entry]}))


def test_a_role_taken_away_or_a_new_password_counts_at_the_next_request(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "people.yaml"
    _registry_file(path, ["caseworker"])
    registry = Registry.load(path, every_s=0)
    console, recorder, _ = _console(engine, People.empty(), staff=registry)
    c = TestClient(create_app(console), follow_redirects=False)
    assert sign_in(c, "mo-jackson", "W-1") == 303
    page = c.get("/escalations/esc-mo-1")
    _registry_file(path, ["auditor"])
    refused = c.post("/escalations/esc-mo-1/ack", data={"csrf": _csrf(page.text)})
    assert refused.status_code == 403 and recorder.calls == []
    _registry_file(path, ["caseworker"], password="a brand new password here")
    assert c.get("/now").status_code == 303  # the old password's session ended


def test_signing_out_works_when_the_audit_trail_is_down(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/now")
    token = c.cookies.get(SESSION_COOKIE)
    stack.audit.broken = True
    assert c.post("/logout", data={"csrf": _csrf(page.text)}).status_code == 303
    c.cookies.set(SESSION_COOKIE, token or "")
    assert c.get("/now").status_code == 303


def test_nothing_is_sent_to_notify_when_the_audit_trail_is_down(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/escalations/esc-mo-1")
    stack.audit.broken = True
    answer = c.post("/escalations/esc-mo-1/ack", data={"csrf": _csrf(page.text)})
    assert answer.status_code == 503 and stack.recorder.calls == []


def test_a_refused_form_is_not_audited_as_done(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    page = c.get("/escalations/esc-mo-1")
    csrf = _csrf(page.text)
    before = len(stack.audit.records)
    empty = c.post(
        "/escalations/esc-mo-1/note", data={"csrf": csrf, "note": " ", "note_id": "0" * 32}
    )
    bad_id = c.post(
        "/escalations/esc-mo-1/note", data={"csrf": csrf, "note": "x", "note_id": "0" * 32 + "\n"}
    )
    a_file = c.post(
        "/escalations/esc-mo-1/ack", data={"csrf": csrf}, files={"note": ("n.txt", b"hello")}
    )
    assert [empty.status_code, bad_id.status_code, a_file.status_code] == [422, 422, 422]
    assert len(stack.audit.records) == before and stack.recorder.calls == []


def test_operators_see_no_facts_about_the_child(stack: Stack, engine: Engine) -> None:
    with DbSession(engine) as s:
        row = s.get(EscalationRow, "esc-mo-1")
        assert row is not None
        row.evidence = '{"risk_tier": "high"}'
        s.commit()
    c = stack.client
    sign_in(c, "mo-jackson", "O-1")
    assert "risk tier" not in c.get("/escalations/esc-mo-1").text
    c.cookies.clear()
    sign_in(c, "mo-jackson", "W-1")
    assert "risk tier" in c.get("/escalations/esc-mo-1").text


def test_now_says_when_it_shows_only_the_first_rows(stack: Stack, engine: Engine) -> None:
    with DbSession(engine) as s:
        s.add_all(_escalation(f"bulk-{i:03d}", "mo-jackson", 300 + i) for i in range(200))
        s.commit()
    c = stack.client
    sign_in(c, "mo-jackson", "W-1")
    assert "The first 200 of 201 open escalations" in c.get("/now").text


def test_notify_steps_in_words() -> None:
    from services.console.views import step_words

    assert [step_words(s) for s in ("0", "r2", "e1", "e2.3", "resolved", "odd")] == [
        "first notice",
        "reminder 2",
        "escalation level 1",
        "escalation level 2, pass 3",
        "all clear",
        "odd",
    ]


def test_the_report_page_shows_the_agencys_measures_and_audits_the_view(stack: Stack) -> None:
    c = stack.client
    sign_in(c, "mo-jackson", "A-1")  # an auditor reads reports too
    page = c.get("/report", params={"from": "2026-11-01", "to": "2026-11-30"})
    assert page.status_code == 200
    assert "Missing episodes" in page.text and "<table>" in page.text
    assert "<style" not in page.text and "<script>" not in page.text
    assert ("report.view", "2026-11-01..2026-11-30") in [
        (r.action, r.object_id) for r in stack.audit.records
    ]
    csv = c.get("/report.csv", params={"from": "2026-11-01", "to": "2026-11-30"})
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    assert "child-esc-mo-1" not in csv.text and "child-esc-mo-1" not in page.text
    bad = c.get("/report", params={"from": "2026-13-01<b>"})
    assert bad.status_code == 422 and "from: a date" in bad.text and "<b>" not in bad.text
    reversed_ = c.get("/report", params={"from": "2026-11-30", "to": "2026-11-01"})
    assert reversed_.status_code == 422 and "to:" in reversed_.text
