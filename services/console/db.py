"""The read model's database: the engine, and its schema migrated with Alembic.

`CAREALERT_DATABASE_URL`: `sqlite:///.run/console.db` by default (a file, for one machine);
`postgresql+psycopg://user@host:5432/carealert` in production.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///.run/console.db"
log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's directory is created if missing, and SQLite waits
    for a lock (readers and the projector share the file) instead of failing at once."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]  # sqlite3
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


# The rows projected before this revision lack what later code reads (the report's columns,
# episodes keyed within their child): a read model older than it is rebuilt, not upgraded.
REPROJECT_BELOW = "0004"


def current_revision(engine: Engine) -> str | None:
    """The read model's revision, or None when it has none (a new database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest migration (`alembic upgrade head`). A read model older
    than REPROJECT_BELOW is dropped and made again, empty (its offsets too): the projector then
    reads the topics from their beginning and every row has what the new release reads. True
    when it was rebuilt."""
    found = current_revision(engine)
    rebuilt = found is not None and found < REPROJECT_BELOW
    if rebuilt:
        log.warning(
            "read model older than this release: rebuilt from the topics", extra={"revision": found}
        )
        drop(engine)
    command.upgrade(_config(engine), "head")
    return rebuilt


def drop(engine: Engine) -> None:
    """Remove every table of the read model, offsets included (`alembic downgrade base`)."""
    command.downgrade(_config(engine), "base")
