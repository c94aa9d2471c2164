"""Notify's connections to receivers, against real servers on loopback: the webhook and SMS
channels' HTTP pools (services.notify.channels.http) classify failures as before, never follow
a redirect, and send at most `per_receiver` requests to one receiver at once while another
receiver is not held up; SMTP sessions to the relay are reused, one that failed never is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from services.notify.channels.base import DeliveryError
from services.notify.channels.http import HttpPools, post_json
from tests.support import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def reason_of(pools: HttpPools, url: str, timeout: float = 2.0) -> str | None:
    try:
        await post_json(pools, ("a", "r"), url, b"{}", {}, timeout)
    except DeliveryError as exc:
        return f"{exc.reason}/{'retryable' if exc.retryable else 'final'}"
    return None


async def reason_from(handler: Handler) -> str | None:
    """How a delivery to `handler`'s server at /hook ends, on pools of its own."""
    pools = HttpPools()
    try:
        async with server(handler) as base:
            return await reason_of(pools, f"{base}/hook")
    finally:
        await pools.close()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (202, None),
        (404, "http_4xx/final"),
        (429, "http_429/retryable"),
        (503, "http_5xx/retryable"),
    ],
)
def test_a_status_is_classified_as_before(status: int, expected: str | None) -> None:
    async def answer(_: web.Request) -> web.Response:
        return web.Response(status=status)

    assert asyncio.run(reason_from(answer)) == expected


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(status: int) -> None:
    """307 and 308 would send the signed POST again, to wherever the receiver points."""
    hits: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        if request.path == "/hook":
            return web.Response(status=status, headers={"Location": "/elsewhere"})
        return web.Response()

    assert asyncio.run(reason_from(answer)) == "http_4xx/final"
    assert hits == ["POST /hook"]


def test_the_timeout_bounds_the_wait_for_a_free_slot() -> None:
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        if request.path == "/busy":
            await release.wait()
        return web.Response()

    async def go() -> str | None:
        pools = HttpPools(per_receiver=1)
        try:
            async with server(hook) as base:
                busy = asyncio.create_task(
                    post_json(pools, ("a", "r"), f"{base}/busy", b"{}", {}, 5)
                )
                await asyncio.sleep(0.2)
                waited = await asyncio.wait_for(reason_of(pools, f"{base}/hook", 0.2), 2)
                release.set()
                await busy
                return waited
        finally:
            await pools.close()

    assert asyncio.run(go()) == "timeout/retryable"


def test_agencies_never_share_a_connection() -> None:
    peers: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.Response(headers={"Set-Cookie": "session=agency-a"})

    async def go() -> list[str]:
        pools = HttpPools()
        seen: list[str] = []

        async def cookie_seen(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Cookie", ""))
            return await hook(request)

        try:
            async with server(cookie_seen) as base:
                for agency in ("a", "a", "b"):
                    await post_json(pools, (agency, "on-call"), f"{base}/hook", b"{}", {}, 2)
            return seen
        finally:
            await pools.close()

    assert asyncio.run(go()) == ["", "", ""]  # no cookie kept
    assert peers[0] == peers[1] and peers[2] != peers[0]  # a reused its; b got its own


def test_a_refused_connection_and_a_slow_receiver_may_succeed_later() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response()

    async def go() -> tuple[str | None, str | None]:
        pools = HttpPools()
        try:
            refused = await reason_of(pools, f"http://127.0.0.1:{free_port()}/hook")
            async with server(slow) as base:
                timed_out = await reason_of(pools, f"{base}/hook", timeout=0.2)
            return refused, timed_out
        finally:
            await pools.close()

    assert asyncio.run(go()) == ("connect/retryable", "timeout/retryable")


def test_one_receiver_gets_at_most_its_share_at_once_and_others_are_not_held_up() -> None:
    now = {"slow": 0, "most": 0}
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        if request.path == "/slow":
            now["slow"] += 1
            now["most"] = max(now["most"], now["slow"])
            await release.wait()
            now["slow"] -= 1
        return web.Response()

    async def go() -> tuple[int, str | None]:
        pools = HttpPools(per_receiver=3)
        try:
            async with server(hook) as base:
                slow = [
                    asyncio.create_task(
                        post_json(pools, ("a", "slow"), f"{base}/slow", b"{}", {}, 5)
                    )
                    for _ in range(10)
                ]
                await asyncio.sleep(0.3)
                # Another receiver on the same server is served while the slow one is full.
                other = await asyncio.wait_for(reason_of(pools, f"{base}/fast"), 2)
                release.set()
                await asyncio.gather(*slow)
                return now["most"], other
        finally:
            await pools.close()

    assert asyncio.run(go()) == (3, None)


# --- SMTP sessions to the relay (services.notify.channels.email.SmtpSessions) ---------------


class Relay:
    """aiosmtpd handler: which client port each accepted mail came from; refuses nobody@."""

    def __init__(self) -> None:
        self.peers: list[int] = []

    async def handle_RCPT(  # noqa: N802  # aiosmtpd's hook name
        self, server: object, session: object, envelope: object, address: str, options: object
    ) -> str:
        del server, session, options
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]  # aiosmtpd Envelope
        return "250 OK"

    async def handle_DATA(  # noqa: N802  # aiosmtpd's hook name
        self, server: object, session: object, envelope: object
    ) -> str:
        del server, envelope
        self.peers.append(session.peer[1])  # type: ignore[attr-defined]  # aiosmtpd Session
        return "250 OK"


def test_smtp_sessions_are_reused_and_one_that_failed_is_not() -> None:
    from aiosmtpd.controller import Controller

    from services.notify.channels.base import Delivery
    from services.notify.channels.email import SmtpChannel, SmtpConfig
    from services.notify.templates import Message

    relay = Relay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()

    def mail(n: int, to: str = "alex@agency.example") -> Delivery:
        message = Message(subject=f"Mail {n}", body="Text\n", data={})
        return Delivery(f"n-{n}", "e-1", "caseworker", "caseworker", to, message)

    async def go() -> list[str]:
        channel = SmtpChannel(SmtpConfig(port=controller.port))
        outcomes = []
        try:
            for delivery in (mail(1), mail(2), mail(3, "nobody@agency.example"), mail(4)):
                try:
                    await channel.send(delivery)
                    outcomes.append("sent")
                except DeliveryError as exc:
                    outcomes.append(exc.reason)
        finally:
            await channel.sessions.close()
        return outcomes

    try:
        assert asyncio.run(go()) == ["sent", "sent", "bad_address", "sent"]
    finally:
        controller.stop()
    first, second, after_refusal = relay.peers
    assert first == second  # one session for both mails
    assert after_refusal != first  # the session that failed was closed, a new one opened
