"""jobs: priority (live studies before a reprocessing backlog) and progress of a running job

Revision ID: 0006_job_priority_progress
Revises: 0005_ops
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_job_priority_progress"
down_revision = "0005_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch_op.create_index(
            "ix_jobs_claim_order", ["state", "priority", "not_before", "id"], unique=False
        )
    # Jobs queued before this revision: automatic ones are live studies.
    op.execute("UPDATE jobs SET priority = 10 WHERE reason = 'stable'")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_claim_order")
        batch_op.drop_column("progress")
        batch_op.drop_column("priority")
