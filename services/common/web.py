"""The workers' only HTTP surface (the rules worker, the gate): /metrics, /healthz, /readyz on
their *_HOST. Every other path is 404.

The rules worker turns faust's own web server off: its built-in views (`/table/<name>/<key>/`,
`/router/`, ...) would serve children's state to anyone who can reach the port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, str]]
"""A health or readiness check: (ok, a short plain-text reason)."""


def health_app(registry: CollectorRegistry, healthz: Check, readyz: Check) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def answer(check: Check) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_request: web.Request) -> web.Response:
            ok, text = check()
            return web.Response(text=text, status=200 if ok else 503)

        return handler

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", answer(healthz))
    app.router.add_get("/readyz", answer(readyz))
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Listen on `host:port` only; the caller keeps the runner and cleans it up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
