"""Writing upserts (and deletes) and offsets to the read model: one transaction per batch.

`write_batch` applies a batch's writes and the partitions' next offsets in ONE transaction:
either all of it is in the database or none of it, so a projector that crashes at any moment
starts again exactly after the last batch it wrote (nothing lost, nothing applied twice; and
applying an upsert twice leaves the same row anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.console.models import Base, Offset
from services.console.projection import Delete, Upsert, Write

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


def apply(conn: Connection, upsert: Write) -> None:
    """One upsert: INSERT .. ON CONFLICT (key) DO UPDATE SET the `update` columns (or DO
    NOTHING when there are none); or one DELETE by key (no row: nothing happens)."""
    table = Base.metadata.tables[upsert.table]
    if isinstance(upsert, Delete):
        conn.execute(delete(table).where(*(table.c[k] == v for k, v in upsert.key.items())))
        return
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
    upserts: Iterable[Write],
    offsets: Mapping[TopicPartition, int],
    expected: Mapping[TopicPartition, int | None] | None = None,
) -> None:
    """Apply `upserts` in order and store `offsets` (the next offset to read per partition) in
    one transaction. With `expected` (the stored offset the batch was read from, None for none
    stored), raises OffsetsMoved when the database holds anything else. Raises what the
    database raises; then nothing of the batch is written."""
    with engine.begin() as conn:
        if expected is not None:
            # Offsets first, each written only where it was expected: the first write takes the
            # database's write lock (SQLite) or the row's (PostgreSQL), so two writers can never
            # both pass; the loser's transaction is rolled back whole.
            for (topic, partition), next_offset in sorted(offsets.items()):
                if not _moved_on(
                    conn, topic, partition, expected.get((topic, partition)), next_offset
                ):
                    raise OffsetsMoved("the read model's offsets moved under this projector")
        for upsert in upserts:
            apply(conn, upsert)
        if expected is None:
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


def _moved_on(
    conn: Connection, topic: str, partition: int, expected: int | None, next_offset: int
) -> bool:
    """Store `next_offset` for the partition if the stored one is `expected` (None: no row);
    whether it was."""
    table = Base.metadata.tables["projection_offsets"]
    if expected is None:
        stmt = _insert(conn, table).values(
            topic=topic, partition=partition, next_offset=next_offset
        )
        # RETURNING says whether the row was inserted (the driver's rowcount does not, on
        # PostgreSQL, for ON CONFLICT DO NOTHING).
        inserted = conn.execute(
            stmt.on_conflict_do_nothing(index_elements=["topic", "partition"]).returning(
                table.c.topic
            )
        )
        return inserted.first() is not None
    done = conn.execute(
        update(table)
        .where(
            table.c.topic == topic,
            table.c.partition == partition,
            table.c.next_offset == expected,
        )
        .values(next_offset=next_offset)
    )
    return bool(done.rowcount == 1)


def load_offsets(engine: Engine) -> dict[TopicPartition, int]:
    """The next offset to read of each partition the read model has seen."""
    with engine.connect() as conn:
        rows = conn.execute(select(Offset.topic, Offset.partition, Offset.next_offset))
        return {(topic, partition): next_offset for topic, partition, next_offset in rows}
