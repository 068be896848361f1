"""self-test: studies.qa marks the node's own phantom studies; selftests records each run

Revision ID: 0007_selftest_qa
Revises: 0006_job_priority_progress
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_selftest_qa"
down_revision = "0006_job_priority_progress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("qa", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "selftests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("selftests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_selftests_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("selftests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_selftests_started_at"))
    op.drop_table("selftests")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("qa")
