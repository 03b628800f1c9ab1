"""second wave: the follow-up chain on studies; checkpoints, warnings, packing and range
tests on trials

Studies gain ``parent_id``, ``follow_up_id``, ``round`` (existing rows are round 1 of a
chain of one) and ``chain_reason`` (issue 13). Trials gain the best epoch's checkpoint in
the artifact store (``checkpoint_key``, ``checkpoint_epoch``, ``checkpoint_bytes``), a list
of ``warnings`` that did not fail the trial, ``packed_with`` (issue 15) and ``lr_range`` (a
range test's curve and suggestion). Every new column is nullable or has a server default,
so rows written by earlier versions stay valid.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    # Plain ADD COLUMN, no batch: on SQLite a batch that also creates an index copies the
    # table, and dropping the old sweepdoc_studies fails while trials point at it.
    op.add_column("sweepdoc_studies", sa.Column("parent_id", sa.Integer(), nullable=True))
    op.add_column("sweepdoc_studies", sa.Column("follow_up_id", sa.Integer(), nullable=True))
    op.add_column(
        "sweepdoc_studies",
        sa.Column("round", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column("sweepdoc_studies", sa.Column("chain_reason", sa.Text(), nullable=True))
    op.create_index("ix_sweepdoc_studies_parent", "sweepdoc_studies", ["parent_id"])
    for column in (
        sa.Column("checkpoint_key", sa.String(length=300), nullable=True),
        sa.Column("checkpoint_epoch", sa.Integer(), nullable=True),
        sa.Column("checkpoint_bytes", sa.Integer(), nullable=True),
        sa.Column("warnings", sa.Text(), nullable=True),
        sa.Column("packed_with", sa.Text(), nullable=True),
        sa.Column("lr_range", sa.Text(), nullable=True),
    ):
        op.add_column("sweepdoc_trials", column)


def downgrade() -> None:
    with op.batch_alter_table("sweepdoc_trials") as batch:
        for column in (
            "lr_range",
            "packed_with",
            "warnings",
            "checkpoint_bytes",
            "checkpoint_epoch",
            "checkpoint_key",
        ):
            batch.drop_column(column)
    op.drop_index("ix_sweepdoc_studies_parent", table_name="sweepdoc_studies")
    with op.batch_alter_table("sweepdoc_studies") as batch:
        for column in ("chain_reason", "round", "follow_up_id", "parent_id"):
            batch.drop_column(column)
