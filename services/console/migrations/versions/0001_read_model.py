"""The read model: children, episodes, escalations, notifications, acks, projection offsets.

Revision ID: 0001
Revises:
Create Date: 2026-12-04 (generated with alembic autogenerate, then tidied by hand)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "children",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("child_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(2), nullable=False),
        sa.Column("county", sa.String(256), nullable=True),
        sa.Column("caseworker_id", sa.String(128), nullable=True),
        sa.Column("supervisor_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("agency_id", "child_id", name="pk_children"),
    )
    op.create_index("ix_children_agency_caseworker", "children", ["agency_id", "caseworker_id"])
    op.create_index("ix_children_agency_supervisor", "children", ["agency_id", "supervisor_id"])
    op.create_table(
        "episodes",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("episode_id", sa.String(128), nullable=False),
        sa.Column("child_id", sa.String(128), nullable=False),
        sa.Column("opened_at", AT, nullable=True),
        sa.Column("closed_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("agency_id", "episode_id", name="pk_episodes"),
    )
    op.create_index("ix_episodes_agency_child", "episodes", ["agency_id", "child_id"])
    op.create_table(
        "escalations",
        sa.Column("escalation_id", sa.String(128), nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("child_id", sa.String(128), nullable=False),
        sa.Column("episode_id", sa.String(128), nullable=True),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("action", sa.String(4096), nullable=False),
        sa.Column("state", sa.String(2), nullable=False),
        sa.Column("county", sa.String(256), nullable=True),
        sa.Column("caseworker_id", sa.String(128), nullable=True),
        sa.Column("supervisor_id", sa.String(128), nullable=True),
        sa.Column("due_at", AT, nullable=True),
        sa.Column("fired_at", AT, nullable=True),
        sa.Column("resolved_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("escalation_id", name="pk_escalations"),
    )
    op.create_index("ix_escalations_agency_child", "escalations", ["agency_id", "child_id"])
    op.create_index(
        "ix_escalations_agency_status_due", "escalations", ["agency_id", "status", "due_at"]
    )
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.String(128), nullable=False),
        sa.Column("receiver", sa.String(256), nullable=False),
        sa.Column("recipient_class", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("escalation_status", sa.String(16), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("person_id", sa.String(128), nullable=True),
        sa.Column("silence_id", sa.String(128), nullable=True),
        sa.Column("redirected_to", sa.String(256), nullable=True),
        sa.Column("digest_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("notification_id", "status", "attempt", name="pk_notifications"),
    )
    op.create_index("ix_notifications_escalation_id", "notifications", ["escalation_id"])
    op.create_table(
        "acks",
        sa.Column("escalation_id", sa.String(128), nullable=False),
        sa.Column("who", sa.String(272), nullable=False),
        sa.Column("receiver", sa.String(256), nullable=False),
        sa.Column("person_id", sa.String(128), nullable=True),
        sa.Column("person_agency_id", sa.String(64), nullable=True),
        sa.Column("via", sa.String(16), nullable=True),
        sa.Column("stops", sa.Boolean(), nullable=False),
        sa.Column("acked_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("escalation_id", "who", name="pk_acks"),
    )
    op.create_table(
        "projection_offsets",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name="pk_projection_offsets"),
    )


def downgrade() -> None:
    for table in ("projection_offsets", "acks", "notifications", "escalations", "episodes"):
        op.drop_table(table)  # their indexes go with them
    op.drop_table("children")
