"""dropped_tasks: queue messages rejected as malformed, with the reason

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dropped_tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dropped_tasks_task", "dropped_tasks", ["task"])


def downgrade() -> None:
    op.drop_index("ix_dropped_tasks_task", "dropped_tasks")
    op.drop_table("dropped_tasks")
