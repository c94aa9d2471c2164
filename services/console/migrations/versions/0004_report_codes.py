"""What the compliance report reads from the read model (services.report.dbsource), and an
episode keyed within its child: (agency_id, child_id, episode_id), as the contract names it
(before, two children's "E-1" were one row). Also an episode's jurisdiction, last-seen time and
when its return was recorded; an escalation's policy version, its triggering and resolving
events, when it was discharged and the child's age band at its start; each event's
jurisdiction, the placement it names and a code (a profile's sex, a placement's setting, a
trafficking finding's status); indexes of an agency's events by type and escalations by rule.
Codes only: no date of birth.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-12

Rows projected before this revision keep NULL in the new columns until a rebuild
(`carealert console rebuild`, then `project`) reads the topics again; the report refuses a read
model with such rows rather than count them wrong.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch_alter_table: ALTER TABLE on PostgreSQL, SQLite's own ADD COLUMN where it can.
    # SQLite: the table is copied with the new key (and its index made again).
    with op.batch_alter_table("episodes") as batch:
        batch.drop_constraint("pk_episodes", type_="primary")
        batch.create_primary_key("pk_episodes", ["agency_id", "child_id", "episode_id"])
        batch.add_column(sa.Column("state", sa.String(2), nullable=True))
        batch.add_column(sa.Column("county", sa.String(256), nullable=True))
        batch.add_column(sa.Column("last_seen_at", AT, nullable=True))
        batch.add_column(sa.Column("located_event_at", AT, nullable=True))
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("policy_version", sa.String(128), nullable=True))
        batch.add_column(sa.Column("trigger_event_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("discharged_at", AT, nullable=True))
        batch.add_column(sa.Column("age_band", sa.String(8), nullable=True))
    with op.batch_alter_table("child_events") as batch:
        batch.add_column(sa.Column("state", sa.String(2), nullable=True))
        batch.add_column(sa.Column("county", sa.String(256), nullable=True))
        batch.add_column(sa.Column("placement_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("code", sa.String(32), nullable=True))
    op.create_index(
        "ix_child_events_agency_type_at", "child_events", ["agency_id", "event_type", "occurred_at"]
    )
    op.create_index("ix_escalations_agency_rule", "escalations", ["agency_id", "rule_id"])


def downgrade() -> None:
    op.drop_index("ix_escalations_agency_rule", "escalations")
    op.drop_index("ix_child_events_agency_type_at", "child_events")
    # SQLite: each table is copied without the columns (its indexes are made again).
    with op.batch_alter_table("child_events") as batch:
        for column in ("code", "placement_id", "county", "state"):
            batch.drop_column(column)
    with op.batch_alter_table("escalations") as batch:
        for column in (
            "age_band",
            "discharged_at",
            "resolved_by",
            "trigger_event_id",
            "policy_version",
        ):
            batch.drop_column(column)
    # The old key holds one episode per id: of the children sharing one, the first (by id)
    # stays (a rebuild reads them again).
    op.execute(
        "DELETE FROM episodes WHERE EXISTS (SELECT 1 FROM episodes AS other"
        " WHERE other.agency_id = episodes.agency_id AND other.episode_id = episodes.episode_id"
        " AND other.child_id < episodes.child_id)"
    )
    with op.batch_alter_table("episodes") as batch:
        for column in ("located_event_at", "last_seen_at", "county", "state"):
            batch.drop_column(column)
        batch.drop_constraint("pk_episodes", type_="primary")
        batch.create_primary_key("pk_episodes", ["agency_id", "episode_id"])
