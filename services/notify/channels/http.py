"""The HTTP side of the webhook and SMS channels: one connection pool per agency's receiver, at
most `per_receiver` requests to it at once.

Per agency and receiver (receiver names repeat across agencies), so a slow or failing receiver
keeps its own connections busy and never starves another's deliveries, and no two agencies
share a connection; bounded, so a burst queues here instead of opening a connection per
delivery. A request's `timeout` bounds the wait for a free slot, the name lookup and connect,
and each wait for a read; no cookie is kept. aiohttp rather than httpx: on this
path httpx cost about 3 ms of CPU per request against aiohttp's 0.2 ms (bench/notify.py).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from dataclasses import dataclass

import aiohttp
import httpx
from yarl import URL

from services.notify.channels.base import DeliveryError, classify_http

DEFAULT_PER_RECEIVER = 16


@dataclass
class _Pool:
    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    proxy: str | None


def env_proxy(url: URL) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY),
    as httpx honoured them; looked up once per pool, not per request."""
    if urllib.request.proxy_bypass(url.host or ""):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(url.scheme) or proxies.get("all")


class HttpPools:
    """Keep-alive connection pools keyed by receiver (and the origin it is reached at), made
    on first use in the running event loop, all closed by `close`."""

    def __init__(
        self, per_receiver: int = DEFAULT_PER_RECEIVER, tls: ssl.SSLContext | None = None
    ) -> None:
        self.per_receiver = per_receiver
        # The same trust as httpx's default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        self.tls = tls or httpx.create_ssl_context()
        self.pools: dict[tuple[str, str, str], _Pool] = {}

    def _pool(self, who: tuple[str, str], url: URL) -> _Pool:
        key = (*who, str(url.origin()))
        pool = self.pools.get(key)
        if pool is None:
            connector = aiohttp.TCPConnector(
                limit=self.per_receiver, limit_per_host=self.per_receiver, ssl=self.tls
            )
            session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
            pool = _Pool(session, asyncio.Semaphore(self.per_receiver), env_proxy(url))
            self.pools[key] = pool
        return pool

    async def post(
        self,
        who: tuple[str, str],
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
    ) -> int:
        """POST `body` to `url` on the pool of `who` (agency, receiver) and return the status
        code, redirects not followed. Raises TimeoutError when `timeout` (seconds) passes
        waiting for a free slot, looking the name up and connecting, or waiting for a read, as
        httpx's timeout did; aiohttp.ClientError when the request fails otherwise."""
        target = URL(url)
        pool = self._pool(who, target)
        async with asyncio.timeout(timeout):
            await pool.slots.acquire()
        try:
            async with pool.session.post(
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=pool.proxy,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout, sock_connect=timeout, sock_read=timeout
                ),
            ) as response:
                await response.read()
                return response.status
        finally:
            pool.slots.release()

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.session.close()
        self.pools.clear()


async def post_json(
    pools: HttpPools,
    who: tuple[str, str],
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> None:
    """POST a JSON body on the pool of `who` (agency, receiver); any failure becomes a
    classified DeliveryError."""
    try:
        status = await pools.post(
            who, url, body, {"Content-Type": "application/json", **headers}, timeout
        )
    except TimeoutError:  # aiohttp's ServerTimeoutError is one too
        raise DeliveryError("timeout", retryable=True) from None
    except (aiohttp.ClientError, OSError):
        raise DeliveryError("connect", retryable=True) from None
    if status >= 300:
        raise classify_http(status)
