"""Retention: the archive ledger `retention_archives` and `model_versions.artifact_purged_at`.

Why: `enforce-retention` archives old audit rows per organization and month to the artifact store and deletes
them only after reading the archive back. `retention_archives` records, per (organization, category, month),
the object key, row count, time range and id checksum of the last verified archive, so `mlops retention
archives` lists what was archived without scanning the store, and `held_until` keeps a month restored for a
compliance request from being deleted again before the hold ends. The Parquet object and its manifest stay
the source of truth (a crash between writing them and updating this row is repaired by the next run).

`model_versions.artifact_purged_at` records that retention deleted the version's artifact from the store, and
when, so the version row (kept for lineage: deployments, experiments, stage history) no longer points at an
object that silently vanished, and the purge is not attempted again.

Zero downtime: a new empty table, and a nullable column without a default (a catalog-only change).

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-25 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "retention_archives"
ROLE = "mlops_app"
ORG = "(SELECT mlops_current_org())"


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("artifact_purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("min_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.CheckConstraint("category IN ('audit_logs')", name=op.f("ck_retention_archives__category")),
        sa.CheckConstraint("period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name=op.f("ck_retention_archives__period")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_retention_archives__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_archives")),
        sa.UniqueConstraint(
            "organization_id", "category", "period", name=op.f("uq_retention_archives__organization_id_category_period")
        ),
    )
    op.execute(
        f"CREATE TRIGGER trg_{TABLE}__updated_at BEFORE UPDATE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION mlops_set_updated_at()"
    )
    # read-only for the application: only retention (as the owner) writes the ledger
    op.execute(f"GRANT SELECT ON {TABLE} TO {ROLE}")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {TABLE} USING (organization_id = {ORG}) "
        f"WITH CHECK (organization_id = {ORG})"
    )


def downgrade() -> None:
    op.drop_table(TABLE)
    op.drop_column("model_versions", "artifact_purged_at")
