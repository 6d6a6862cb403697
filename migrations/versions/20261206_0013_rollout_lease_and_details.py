"""Rollout: a lease and details on `deployment_history`, and at most one unfinished rollout per deployment.

Why: the rollout, rollback and terminate flows record each change as a `deployment_history` row that is
`in_progress` while the serving platform is being driven. Three additions make that row the lock that keeps
one rollout per deployment at a time and lets a dead one be recovered:

- `expires_at`: until when the in-progress row's process is presumed alive (renewed at every step). A row
  still `pending`/`in_progress` after it is stale (its process died) and the next rollout or rollback of the
  deployment finishes it (marks it `failed` and restores the last completed version).
- `details`: what a recovery needs and a person wants to read: the requested steps, the step reached, the
  version the rollout replaced, and, for a rollout started by a promotion, the registry state to restore.
- a partial unique index: at most one `pending`/`in_progress` row per deployment, so two concurrent rollouts
  cannot both start even if one skipped the row lock.

Zero downtime: two nullable columns (catalog-only; `details` has a constant default), and the index built
CONCURRENTLY outside the transaction.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_deployment_history__one_unfinished"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("deployment_history", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "deployment_history",
        sa.Column("details", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    with op.get_context().autocommit_block():
        # a failed earlier CONCURRENTLY build leaves an invalid index behind: drop it, then build
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON deployment_history (deployment_id) "
            "WHERE status IN ('pending', 'in_progress')"
        )


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.drop_column("deployment_history", "details")
    op.drop_column("deployment_history", "expires_at")
