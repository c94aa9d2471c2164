"""Local stand-ins for the outside world, used by `make run` and by the tests: a real SMTP
server (aiosmtpd) and a real HTTP server for webhooks and the SMS gateway. Each keeps what it
received in memory and, given a folder, writes one file per message.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.sink.add(envelope.rcpt_tos, envelope.content)
        return "250 OK"


class SmtpSink:
    """A real SMTP server on loopback; `messages` holds (recipients, parsed email)."""

    def __init__(self, port: int, folder: Path | None = None) -> None:
        self.port = port
        self.folder = folder
        self.messages: list[tuple[list[str], Any]] = []
        self.lock = threading.Lock()
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=port)

    def add(self, rcpt: list[str], content: bytes) -> None:
        msg = message_from_bytes(content, policy=policy.default)
        with self.lock:
            self.messages.append((list(rcpt), msg))
            n = len(self.messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{time.time():.6f}-{n:05d}.eml").write_bytes(content)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


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
