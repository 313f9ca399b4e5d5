"""jobs: driver, scheduler, worker pid, lease ownership, cancel request, last reason

Revision ID: 0003_jobs
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_jobs"
down_revision = "0001"
branch_labels = None
depends_on = None

_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("driver", sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column("scheduler", sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column("worker_pid", _INT, nullable=True))
        batch_op.add_column(sa.Column("owns_lease", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("cancel_request", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in ("cancel_request", "owns_lease", "worker_pid", "scheduler", "driver", "reason"):
            batch_op.drop_column(name)
