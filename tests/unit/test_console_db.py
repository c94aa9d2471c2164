"""A read model older than the release's REPROJECT_BELOW revision is rebuilt, not upgraded: its
rows lack what the new code reads, and the projector fills it again from the topics."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from services.console.db import _config, current_revision, make_engine, migrate


def test_an_old_read_model_is_rebuilt_and_a_current_one_kept(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    assert migrate(engine) is False  # a new database: made, nothing to rebuild
    head = current_revision(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projection_offsets VALUES ('care.events.v1', 0, 42)"))
    assert migrate(engine) is False  # current: kept as it is
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM projection_offsets")).scalar_one() == 1
    command.downgrade(_config(engine), "0003")
    assert migrate(engine) is True
    assert current_revision(engine) == head
    with engine.connect() as conn:  # read from the topics' beginning again
        assert conn.execute(text("SELECT count(*) FROM projection_offsets")).scalar_one() == 0
    engine.dispose()
