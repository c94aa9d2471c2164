"""Writing upserts and offsets to the read model: one transaction per batch.

`write_batch` applies a batch's upserts and the partitions' next offsets in ONE transaction:
either all of it is in the database or none of it, so a projector that crashes at any moment
starts again exactly after the last batch it wrote (nothing lost, nothing applied twice; and
applying an upsert twice leaves the same row anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from services.console.models import Base, Offset
from services.console.projection import Upsert

TopicPartition = tuple[str, int]


class OffsetsMoved(RuntimeError):
    """The stored offsets are not where this projector left them (a rebuild, or a second
    projector, wrote meanwhile): nothing of the batch was written; read the offsets again."""


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT that takes ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"the read model supports SQLite and PostgreSQL, not {conn.dialect.name}")


def apply(conn: Connection, upsert: Upsert) -> None:
    """One upsert: INSERT .. ON CONFLICT (key) DO UPDATE SET the `update` columns (or DO
    NOTHING when there are none)."""
    table = Base.metadata.tables[upsert.table]
    stmt = _insert(conn, table).values(**upsert.values)
    if upsert.update:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(upsert.key),
            set_={column: stmt.excluded[column] for column in upsert.update},
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(upsert.key))
    conn.execute(stmt)


def write_batch(
    engine: Engine,
    upserts: Iterable[Upsert],
    offsets: Mapping[TopicPartition, int],
    expected: Mapping[TopicPartition, int | None] | None = None,
) -> None:
    """Apply `upserts` in order and store `offsets` (the next offset to read per partition) in
    one transaction. With `expected` (the stored offset the batch was read from, None for none
    stored), raises OffsetsMoved when the database holds anything else. Raises what the
    database raises; then nothing of the batch is written."""
    with engine.begin() as conn:
        if expected is not None:
            wanted = sorted(offsets)
            query = select(Offset.topic, Offset.partition, Offset.next_offset)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            stored = {(t, p): n for t, p, n in conn.execute(query)}
            if any(stored.get(tp) != expected.get(tp) for tp in wanted):
                raise OffsetsMoved("the read model's offsets moved under this projector")
        for upsert in upserts:
            apply(conn, upsert)
        for (topic, partition), next_offset in sorted(offsets.items()):
            apply(
                conn,
                Upsert(
                    "projection_offsets",
                    {"topic": topic, "partition": partition, "next_offset": next_offset},
                    ("topic", "partition"),
                    ("next_offset",),
                ),
            )


def load_offsets(engine: Engine) -> dict[TopicPartition, int]:
    """The next offset to read of each partition the read model has seen."""
    with engine.connect() as conn:
        rows = conn.execute(select(Offset.topic, Offset.partition, Offset.next_offset))
        return {(topic, partition): next_offset for topic, partition, next_offset in rows}
