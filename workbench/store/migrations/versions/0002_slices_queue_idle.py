"""slices: queue position, idle detection columns

Revision ID: 0002_slices
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_slices"
down_revision = "0001"
branch_labels = None
depends_on = None

_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_position", _INT, nullable=True))
        batch_op.add_column(sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("idle_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("usage", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_column("usage")
        batch_op.drop_column("idle_at")
        batch_op.drop_column("last_active_at")
        batch_op.drop_column("queue_position")
