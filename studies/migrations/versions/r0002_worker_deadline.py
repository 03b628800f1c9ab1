"""each running slot carries its worker's heartbeat grace (stale_after_s)

Before, every process reaped running slots by its own ``SWEEPDOC_WORKER_STALE_AFTER_S``,
so a worker configured with a longer grace had its live trials reaped by a server on the
default. The claiming worker now writes its grace into the slot and every reaper judges the
slot by it. Existing rows get the old default (30 s), what every process assumed until now.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    with op.batch_alter_table("sweepdoc_trials") as batch:
        batch.add_column(
            sa.Column("stale_after_s", sa.Float(), nullable=False, server_default=sa.text("30"))
        )


def downgrade() -> None:
    with op.batch_alter_table("sweepdoc_trials") as batch:
        batch.drop_column("stale_after_s")
