"""corrections: what a rater said after a 👎 (the intent meant, the answer did not help, other)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("interaction_id", sa.String(36), nullable=False),
        sa.Column("rater", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("interaction_id", "rater", name="uq_correction_rater"),
        sa.CheckConstraint(
            "kind IN ('intent', 'unhelpful', 'other', 'withdrawn')", name="ck_correction_kind"
        ),
    )
    op.create_index("ix_corrections_interaction_id", "corrections", ["interaction_id"])
    op.create_index("ix_corrections_rater", "corrections", ["rater"])


def downgrade() -> None:
    op.drop_index("ix_corrections_rater", table_name="corrections")
    op.drop_index("ix_corrections_interaction_id", table_name="corrections")
    op.drop_table("corrections")
