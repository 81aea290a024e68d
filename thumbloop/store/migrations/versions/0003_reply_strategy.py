"""interactions: how each reply was made (strategy, generator version, the generator's prompt)

Votes on generated replies train the generator (KTO), which needs the exact prompt and completion.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(
            sa.Column("reply_strategy", sa.String(64), nullable=False, server_default="template")
        )
        batch.add_column(sa.Column("generator", sa.String(256), nullable=True))
        batch.add_column(sa.Column("reply_prompt", sa.JSON(), nullable=True))
        batch.create_index("ix_interactions_reply_strategy", ["reply_strategy"])


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.drop_index("ix_interactions_reply_strategy")
        batch.drop_column("reply_prompt")
        batch.drop_column("generator")
        batch.drop_column("reply_strategy")
