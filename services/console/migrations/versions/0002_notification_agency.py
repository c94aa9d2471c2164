"""Notifications carry their escalation's agency (notify writes it since issue 15's release).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("agency_id", sa.String(64), nullable=True))
        batch.create_index("ix_notifications_agency_at", ["agency_id", "at"])


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_agency_at")
        batch.drop_column("agency_id")
