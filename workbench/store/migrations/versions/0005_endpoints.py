"""endpoints: models served from a slice

Revision ID: 0005_endpoints
Revises: 0004_jobs
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_endpoints"
down_revision = "0004_jobs"
branch_labels = None
depends_on = None

_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("lease_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("model_path", sa.String(length=2000), nullable=False),
        sa.Column("url", sa.String(length=400), nullable=True),
        sa.Column("node", sa.String(length=200), nullable=True),
        sa.Column("pid", _INT, nullable=True),
        sa.Column("token", sa.String(length=200), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("bench", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("log_path", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
    )
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_endpoints_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_endpoints_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_endpoints_lease_id"), ["lease_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_endpoints_state"), ["state"], unique=False)


def downgrade() -> None:
    op.drop_table("endpoints")
