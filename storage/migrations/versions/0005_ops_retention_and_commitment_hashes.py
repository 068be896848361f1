"""ops: retention deletions, storage commitment file hashes, job clips outliving instances

Revision ID: 0005_ops
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_ops"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("files_removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("retention_deletions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_deletions_study_instance_uid"),
            ["study_instance_uid"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_retention_deletions_files_removed_at"),
            ["files_removed_at"],
            unique=False,
        )
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_hashes", sa.JSON(), nullable=True))
    with op.batch_alter_table("job_clips", schema=None) as batch_op:
        batch_op.alter_column("instance_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("job_clips", schema=None) as batch_op:
        batch_op.alter_column("instance_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_column("file_hashes")
    with op.batch_alter_table("retention_deletions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_deletions_files_removed_at"))
        batch_op.drop_index(batch_op.f("ix_retention_deletions_study_instance_uid"))
    op.drop_table("retention_deletions")
