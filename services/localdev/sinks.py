"""Local stand-ins for the outside world, used by `make run` and by the tests: a real SMTP
server (aiosmtpd) and a real HTTP server for webhooks and the SMS gateway. Each keeps what it
received in memory and, given a folder, writes one file per message.

The SMTP sink's folder is meant to be opened in a browser: each mail is saved as
`<timestamp>-<n>.eml` (the bytes received) and `<timestamp>-<n>.html` (its headers and its HTML
part, or its text with links made clickable), and `index.html` lists every mail in the folder,
newest first, with its subject, recipients and time.
"""

from __future__ import annotations

import hmac
import html
import json
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.contentmanager import ContentManager, raw_data_manager
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.notify.channels.email import linked_html
from services.notify.channels.webhook import sign


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    signature_ok: bool | None = None
    status: int = 200  # what the sink answered

    @property
    def accepted(self) -> bool:
        return self.status == 200

    def json(self) -> Any:
        return json.loads(self.body)


class _ReadableContent(ContentManager):
    """The standard content manager, except that a multipart mail's content is its plain-text
    body (else its HTML), as a person reading it sees it: `mail.get_content()` reads the same
    for a `multipart/alternative` mail as for a text-only one."""

    def get_content(self, msg: Message, *args: Any, **kw: Any) -> Any:
        if isinstance(msg, EmailMessage) and msg.get_content_maintype() == "multipart":
            body = msg.get_body(("plain", "html"))
            return body.get_content() if body is not None else ""
        return raw_data_manager.get_content(msg, *args, **kw)


READABLE = policy.default.clone(content_manager=_ReadableContent())


@dataclass(frozen=True)
class Saved:
    """One mail in the sink's folder, as `index.html` lists it."""

    stem: str
    subject: str
    to: str
    at: float


_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)


def _page(title: str, content: str) -> str:
    # The sink shows what it was sent: scripts and remote content stay off.
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        f"<title>{html.escape(title)}</title></head>\n"
        '<body style="font-family: Arial, Helvetica, sans-serif; margin: 1.5em;">\n'
        f"{content}\n</body>\n</html>\n"
    )


def _text_of(part: Message | None) -> str | None:
    if not isinstance(part, EmailMessage):
        return None
    try:
        return str(part.get_content())
    except (KeyError, LookupError, ValueError):
        return None


def readable_page(mail: EmailMessage, stem: str) -> str:
    """One saved mail as a page: its headers, its HTML part (or its text, links clickable),
    the text part under "Plain text", and links to the raw `.eml` and the index."""
    rows = "".join(
        f"<tr><th style='text-align: left; padding-right: 1em;'>{name}</th>"
        f"<td>{html.escape(str(mail.get(name, '')))}</td></tr>\n"
        for name in ("Subject", "From", "To", "Date", "Message-ID", "X-Carealert-Escalation")
    )
    text = _text_of(mail.get_body(("plain",)))
    page = _text_of(mail.get_body(("html",)))
    if page is not None:
        found = _BODY.search(page)
        shown = found.group(1) if found else page
    else:
        shown = f"<pre style='white-space: pre-wrap;'>{linked_html(text or '')}</pre>"
    plain = (
        "<details><summary>Plain text</summary>"
        f"<pre style='white-space: pre-wrap;'>{linked_html(text)}</pre></details>\n"
        if text is not None and page is not None
        else ""
    )
    return _page(
        str(mail.get("Subject", "")),
        f"<p><a href='index.html'>All messages</a> · <a href='{stem}.eml'>raw .eml</a></p>\n"
        f"<table>{rows}</table>\n<hr>\n{shown}\n<hr>\n{plain}",
    )


def index_page(saved: list[Saved]) -> str:
    """`index.html`: every saved mail, newest first, linking to its page."""
    rows = "".join(
        "<tr>"
        f"<td>{datetime.fromtimestamp(s.at).astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}</td>"
        f"<td><a href='{html.escape(s.stem)}.html'>{html.escape(s.subject or '(no subject)')}"
        f"</a></td><td>{html.escape(s.to)}</td></tr>\n"
        for s in sorted(saved, key=lambda s: s.at, reverse=True)
    )
    return _page(
        "carealert mail sink",
        f"<h1>Mail received ({len(saved)})</h1>\n"
        "<table cellpadding='4'><tr><th>Received</th><th>Subject</th><th>To</th></tr>\n"
        f"{rows}</table>",
    )


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.sink.add(envelope.rcpt_tos, envelope.content)
        return "250 OK"


class SmtpSink:
    """A real SMTP server on loopback; `messages` holds (recipients, parsed email). A mail's
    `get_content()` is its text (READABLE). Given a folder, each mail is saved there to be read
    in a browser (module docstring); mails saved there before are listed in the index too."""

    def __init__(self, port: int, folder: Path | None = None) -> None:
        self.port = port
        self.folder = folder
        self.messages: list[tuple[list[str], Any]] = []
        self.saved: list[Saved] = _already_saved(folder) if folder is not None else []
        self.lock = threading.Lock()
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=port)

    def add(self, rcpt: list[str], content: bytes) -> None:
        msg = message_from_bytes(content, policy=READABLE)
        with self.lock:
            self.messages.append((list(rcpt), msg))
            n = len(self.messages)
            if self.folder is not None:
                self._save(self.folder, f"{time.time():.6f}-{n:05d}", rcpt, msg, content)

    def _save(self, folder: Path, stem: str, rcpt: list[str], msg: Any, content: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.eml").write_bytes(content)
        (folder / f"{stem}.html").write_text(readable_page(msg, stem), encoding="utf-8")
        to = ", ".join(rcpt) or str(msg.get("To", ""))  # whom it was delivered to
        self.saved.append(Saved(stem, str(msg.get("Subject", "")), to, time.time()))
        tmp = folder / "index.html.tmp"
        tmp.write_text(index_page(self.saved), encoding="utf-8")
        os.replace(tmp, folder / "index.html")

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def _already_saved(folder: Path) -> list[Saved]:
    saved = []
    for path in sorted(folder.glob("*.eml")):
        try:
            head = message_from_bytes(path.read_bytes(), policy=policy.default)
        except (OSError, ValueError):
            continue
        subject, to = str(head.get("Subject", "")), str(head.get("To", ""))
        saved.append(Saved(path.stem, subject, to, path.stat().st_mtime))
    return saved


@dataclass
class HttpSink:
    """A real HTTP server on loopback for webhooks (`/hooks/<name>`) and SMS (`/sms`).

    `responses` is a queue of status codes to answer with (then 200); `secret` checks
    X-Carealert-Signature on every request."""

    port: int
    folder: Path | None = None
    secret: str | None = None
    responses: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        app = FastAPI()

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> JSONResponse:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            ok = None
            if self.secret is not None and "x-carealert-signature" in headers:
                expected = sign(self.secret, headers.get("x-carealert-timestamp", ""), body)
                ok = hmac.compare_digest(expected, headers["x-carealert-signature"])
            with self.lock:
                status = self.responses.popleft() if self.responses else 200
                item = Received("/" + path, headers, body, time.time(), ok, status)
                self.received.append(item)
                n = len(self.received)
            if self.folder is not None and status == 200:
                self.folder.mkdir(parents=True, exist_ok=True)
                name = path.replace("/", "_")
                (self.folder / f"{time.time():.6f}-{n:05d}-{name}.json").write_bytes(body)
            return JSONResponse({"status": "ok" if status == 200 else "error"}, status_code=status)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"HTTP sink did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def run_sinks(smtp_port: int, http_port: int, folder: Path, secret: str | None) -> None:
    """Run both sinks until interrupted (for `make run`)."""
    smtp = SmtpSink(smtp_port, folder / "mail")
    http = HttpSink(http_port, folder / "webhooks", secret)
    smtp.start()
    http.start()
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # A tiny health endpoint is the HTTP sink itself: GET is not served, POST is.
    try:
        stop.wait()
    finally:
        http.stop()
        smtp.stop()
