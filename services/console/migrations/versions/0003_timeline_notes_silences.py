"""An escalation's basis and evidence (without the child's person), acknowledgements' notes and
kind, notes, each child's events as codes, and the agencies' silences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Rows projected before this revision keep NULL in the new columns until a rebuild
(`carealert console rebuild`) reads the topics again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch_alter_table: ALTER TABLE on PostgreSQL, SQLite's own ADD COLUMN where it can.
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("basis", sa.String(4096), nullable=True))
        batch.add_column(sa.Column("evidence", sa.Text(), nullable=True))
    with op.batch_alter_table("acks") as batch:
        batch.add_column(sa.Column("note", sa.String(500), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(16), nullable=True))
    op.create_table(
        "notes",
        sa.Column("escalation_id", sa.String(128), nullable=False),
        sa.Column("note_id", sa.String(128), nullable=False),
        sa.Column("person_id", sa.String(128), nullable=True),
        sa.Column("person_agency_id", sa.String(64), nullable=True),
        sa.Column("at", AT, nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("escalation_id", "note_id", name="pk_notes"),
    )
    op.create_table(
        "child_events",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("child_id", sa.String(128), nullable=False),
        sa.Column("episode_id", sa.String(128), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", AT, nullable=False),
        sa.Column("detail", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("agency_id", "event_id", name="pk_child_events"),
    )
    op.create_index(
        "ix_child_events_agency_child_at", "child_events", ["agency_id", "child_id", "occurred_at"]
    )
    op.create_table(
        "silences",
        sa.Column("silence_id", sa.String(128), nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("receiver", sa.String(256), nullable=True),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("starts_at", AT, nullable=False),
        sa.Column("ends_at", AT, nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("expired_at", AT, nullable=True),
        sa.Column("expired_by", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("silence_id", name="pk_silences"),
    )
    op.create_index("ix_silences_agency_ends", "silences", ["agency_id", "ends_at"])


def downgrade() -> None:
    for table in ("silences", "child_events", "notes"):
        op.drop_table(table)  # their indexes go with them
    # SQLite: the tables are copied without the columns (their indexes are made again).
    with op.batch_alter_table("acks") as batch:
        batch.drop_column("kind")
        batch.drop_column("note")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("evidence")
        batch.drop_column("basis")
