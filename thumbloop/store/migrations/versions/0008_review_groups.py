"""review_groups: the review inbox's near-duplicate groups by meaning (sentence embeddings)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_groups",
        sa.Column("text_key", sa.String(64), primary_key=True),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("interaction_id", sa.String(36), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_groups_group_key", "review_groups", ["group_key"])
    op.create_index("ix_review_groups_interaction_id", "review_groups", ["interaction_id"])


def downgrade() -> None:
    op.drop_index("ix_review_groups_interaction_id", table_name="review_groups")
    op.drop_index("ix_review_groups_group_key", table_name="review_groups")
    op.drop_table("review_groups")
