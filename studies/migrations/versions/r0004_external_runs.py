"""external runs: a user's own training loop streaming its epochs (issue 16)

Two new tables: ``sweepdoc_runs`` (one run of a user's loop, an Optuna trial of its
project's Optuna study) and ``sweepdoc_run_epochs`` (its epochs, one row each, with the
verdict each was answered with). No existing table changes.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.create_table(
        "sweepdoc_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("optuna_study_name", sa.String(length=160), nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=False),
        sa.Column("objective", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("num_classes", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("epochs_done", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=20), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("diagnosis", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sweepdoc_runs_project", "sweepdoc_runs", ["project", "created_at"])
    op.create_table(
        "sweepdoc_run_epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("values", sa.Text(), nullable=False),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["sweepdoc_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "epoch", name="uq_sweepdoc_run_epochs_epoch"),
    )


def downgrade() -> None:
    op.drop_table("sweepdoc_run_epochs")
    op.drop_index("ix_sweepdoc_runs_project", table_name="sweepdoc_runs")
    op.drop_table("sweepdoc_runs")
