"""votes: value 0 marks a withdrawn vote (a tombstone with its time)

A withdrawal used to delete the row, so a vote cast before it but redelivered after it by the
queue came back. Keeping the withdrawal as a row lets the cast-last-wins upsert refuse it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("votes") as batch:
        batch.drop_constraint("ck_vote_value", type_="check")
        batch.create_check_constraint("ck_vote_value", "value IN (-1, 0, 1)")


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM votes WHERE value = 0"))
    with op.batch_alter_table("votes") as batch:
        batch.drop_constraint("ck_vote_value", type_="check")
        batch.create_check_constraint("ck_vote_value", "value IN (-1, 1)")
