"""`carealert console project|rebuild`: the console's SQL read model (docs/console.md).

- `project` migrates the read model (CAREALERT_DATABASE_URL) and projects care.events.v1,
  care.escalations.v1, care.notifications.v1, care.acks.v1 and care.silences.v1 into it until
  SIGTERM or SIGINT.
- `serve` does the same in a thread and serves the console's pages with /metrics, /healthz and
  /readyz on CAREALERT_CONSOLE_PORT (8084) (services.console.main); `make run` runs it.
- `rebuild` drops the read model (offsets included) and migrates it again, empty: the next
  `project` reads the topics from their beginning.

Exit status: 0 done or stopped; 2 bad settings; 3 Kafka unreachable (services.cli).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `console project` and `console rebuild` on the top-level subcommands."""
    console = sub.add_parser("console", help="the console's SQL read model")
    commands = console.add_subparsers(dest="console_command", required=True)
    commands.add_parser("project", help="project the topics into the read model until stopped")
    commands.add_parser(
        "serve", help="project, and serve the pages and /metrics (CAREALERT_CONSOLE_PORT)"
    )
    commands.add_parser(
        "rebuild", help="drop the read model and migrate it again empty (then run project)"
    )


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from services.common.logs import configure
    from services.console.db import drop, make_engine, migrate
    from services.console.metrics import ConsoleMetrics
    from services.console.projector import CLIENT_ID, KafkaSource, Projector
    from services.console.settings import ConsoleSettings

    settings = ConsoleSettings()
    configure("console", settings.log_level)
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        if args.console_command == "rebuild":
            drop(engine)
            migrate(engine)
            sys.stdout.write(
                "carealert console: the read model is empty; `carealert console project` reads"
                " the topics from their beginning\n"
            )
            return 0
        migrate(engine)
        kafka = settings.connected_kafka(CLIENT_ID)
        if args.console_command == "serve":
            import asyncio

            from services.console.main import serve

            asyncio.run(serve(settings, engine, kafka))
            return 0
        stop = threading.Event()

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop)
        projector = Projector(
            KafkaSource(kafka),
            engine,
            ConsoleMetrics(CollectorRegistry()),
            batch_max=settings.console_batch_max,
            poll_s=settings.console_poll_s,
        )
        projector.run(stop)
        return 0
    finally:
        engine.dispose()
