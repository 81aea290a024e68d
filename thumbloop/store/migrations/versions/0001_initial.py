"""interactions, votes, training runs

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("interaction_id", sa.String(36), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("user_hash", sa.String(128), nullable=False),
        sa.Column("conversation_hash", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(128), nullable=False),
        sa.Column("intent_confidence", sa.Float(), nullable=False),
        sa.Column("sentiment", sa.String(16), nullable=False),
        sa.Column("response_id", sa.String(256), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("message_ref", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_interactions_user_hash", "interactions", ["user_hash"])
    op.create_index("ix_interactions_conversation_hash", "interactions", ["conversation_hash"])
    op.create_index("ix_interactions_model_version", "interactions", ["model_version"])
    op.create_index("ix_interactions_message_ref", "interactions", ["message_ref"])
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("interaction_id", sa.String(36), nullable=False),
        sa.Column("rater", sa.String(128), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("interaction_id", "rater", name="uq_vote_rater"),
        sa.CheckConstraint("value IN (-1, 1)", name="ck_vote_value"),
    )
    op.create_index("ix_votes_interaction_id", "votes", ["interaction_id"])
    op.create_index("ix_votes_rater", "votes", ["rater"])
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("n_votes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("training_runs")
    op.drop_index("ix_votes_rater", "votes")
    op.drop_index("ix_votes_interaction_id", "votes")
    op.drop_table("votes")
    for name in ("message_ref", "model_version", "conversation_hash", "user_hash"):
        op.drop_index(f"ix_interactions_{name}", "interactions")
    op.drop_table("interactions")
