"""interactions' text may be redacted; dropped_tasks holds dead letters; forgotten_users

Retention (THUMBLOOP_RETENTION_DAYS) replaces old messages, replies and prompts with NULL.
dropped_tasks gains what a dead letter needs to be sent again (kind, fingerprint, attempts,
redriven_at); forgotten_users keeps a /forget tombstone per user hash.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.alter_column("text", existing_type=sa.Text(), nullable=True)
        batch.alter_column("reply_text", existing_type=sa.Text(), nullable=True)
    with op.batch_alter_table("dropped_tasks") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="malformed")
        )
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("redriven_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_dropped_tasks_fingerprint", "dropped_tasks", ["fingerprint"], unique=True)
    op.create_table(
        "forgotten_users",
        sa.Column("user_hash", sa.String(128), primary_key=True),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forgotten_users")
    op.drop_index("ix_dropped_tasks_fingerprint", "dropped_tasks")
    with op.batch_alter_table("dropped_tasks") as batch:
        for name in ("redriven_at", "attempts", "fingerprint", "kind"):
            batch.drop_column(name)
    # redacted rows get an empty text back: the older schema requires one
    op.execute(sa.text("UPDATE interactions SET text = '' WHERE text IS NULL"))
    op.execute(sa.text("UPDATE interactions SET reply_text = '' WHERE reply_text IS NULL"))
    with op.batch_alter_table("interactions") as batch:
        batch.alter_column("text", existing_type=sa.Text(), nullable=False)
        batch.alter_column("reply_text", existing_type=sa.Text(), nullable=False)
