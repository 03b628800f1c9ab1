"""chain state: whether a study's next follow-up round is still to be decided, indexed

The reconciler's sweep of follow-up chains (``studies.chain.advance_all``) looked at every
study whose ``chain_reason`` was NULL, which includes every study without follow-up rounds
(undecided for ever): a scan of the whole table each period. ``chain_state`` (``off``,
``open``, ``decided``) is set at submit and at the decision, and indexed, so the sweep reads
the open rounds only. Existing rows: ``decided`` when a next round was linked or a reason
written, ``open`` when their spec asks for follow-up rounds, else ``off`` (the server
default, also what the column holds for a row inserted without it).

Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"

_STUDIES = sa.table(
    "sweepdoc_studies",
    sa.column("id", sa.Integer()),
    sa.column("spec", sa.Text()),
    sa.column("follow_up_id", sa.Integer()),
    sa.column("chain_reason", sa.Text()),
    sa.column("chain_state", sa.String(16)),
)


def _asks_for_rounds(spec_json: str | None) -> bool:
    # The stored spec as this revision knows it: follow_up.max_rounds (0 or absent: off).
    # Python's json reads the NaN and Infinity tokens sweepdoc's lossless JSON may hold.
    spec: Any = json.loads(spec_json) if spec_json else {}
    follow_up = spec.get("follow_up") if isinstance(spec, dict) else None
    rounds = follow_up.get("max_rounds", 0) if isinstance(follow_up, dict) else 0
    return isinstance(rounds, int) and rounds > 0


def upgrade() -> None:
    # Plain ADD COLUMN, no batch (see 0003: a batch copies sweepdoc_studies on SQLite).
    op.add_column(
        "sweepdoc_studies",
        sa.Column("chain_state", sa.String(length=16), nullable=False, server_default="off"),
    )
    bind = op.get_bind()
    bind.execute(
        sa.update(_STUDIES)
        .where(_STUDIES.c.follow_up_id.is_not(None) | _STUDIES.c.chain_reason.is_not(None))
        .values(chain_state="decided")
    )
    undecided = bind.execute(
        sa.select(_STUDIES.c.id, _STUDIES.c.spec).where(_STUDIES.c.chain_state == "off")
    ).all()
    open_ids = [row.id for row in undecided if _asks_for_rounds(row.spec)]
    if open_ids:
        bind.execute(
            sa.update(_STUDIES).where(_STUDIES.c.id.in_(open_ids)).values(chain_state="open")
        )
    op.create_index("ix_sweepdoc_studies_chain", "sweepdoc_studies", ["chain_state"])


def downgrade() -> None:
    op.drop_index("ix_sweepdoc_studies_chain", table_name="sweepdoc_studies")
    with op.batch_alter_table("sweepdoc_studies") as batch:
        batch.drop_column("chain_state")
