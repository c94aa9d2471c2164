"""Alembic environment: runs on the engine services.console.db hands over (never a URL from
an ini file), online only."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from services.console.models import Base

engine = context.config.attributes["engine"]
assert isinstance(engine, Engine)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
