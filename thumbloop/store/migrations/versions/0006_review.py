"""review inbox: the group index, the log of reviewers' actions, each interaction's latest review

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
# chained after 0005 (privacy and dead letters), written alongside
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("group_key", sa.String(64), primary_key=True),
        sa.Column("interaction_id", sa.String(36), primary_key=True, unique=True),
        sa.Column("user_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intent", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("unsure", sa.Boolean(), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "review_actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("interaction_ids", sa.JSON(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('confirm', 'relabel', 'out_of_scope', 'ignore')", name="ck_review_action"
        ),
    )
    op.create_index("ix_review_actions_reviewer", "review_actions", ["reviewer"])
    op.create_index("ix_review_actions_at", "review_actions", ["at"])
    op.create_table(
        "reviewed_interactions",
        sa.Column("interaction_id", sa.String(36), primary_key=True),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reviewed_interactions_action_id", "reviewed_interactions", ["action_id"])


def downgrade() -> None:
    op.drop_index("ix_reviewed_interactions_action_id", "reviewed_interactions")
    op.drop_table("reviewed_interactions")
    op.drop_index("ix_review_actions_at", "review_actions")
    op.drop_index("ix_review_actions_reviewer", "review_actions")
    op.drop_table("review_actions")
    op.drop_table("review_items")
