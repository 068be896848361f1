"""commitments: Storage Commitment Push Model requests and the state of their reports

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commitments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transaction_uid", sa.String(length=64), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("calling_address", sa.String(length=64), nullable=True),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_type", sa.Integer(), nullable=True),
        sa.Column("failed_count", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("calling_ae", "transaction_uid", name="uq_commitments_ae_transaction"),
    )
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commitments_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitments_state"))
    op.drop_table("commitments")
