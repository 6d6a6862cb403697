"""Hourly and daily rollups of `model_monitoring`, for metric aggregation and retention.

Why: the spec keeps "detailed metrics for 90 days, aggregated for 1 year". `aggregate-metrics` writes one row
per (deployment, metric, granularity, bucket) with exact statistics computed in SQL; `enforce-retention`
deletes raw points only where their rollups are complete. Other services read the table, so its column names
are a contract (README, "Metric rollups"). Like `model_monitoring`, the row carries the deployment's
`organization_id` (set by a trigger from the deployment) and row-level security compares that column.

The table is new and empty, so nothing here blocks a writer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 03:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "model_monitoring_rollups"
ROLE = "mlops_app"
ORG = "(SELECT mlops_current_org())"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("deployment_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("metric_name", sa.String(length=100), nullable=False),
        sa.Column("granularity", sa.String(length=20), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Double(), nullable=False),
        sa.Column("value_min", sa.Double(), nullable=False),
        sa.Column("value_max", sa.Double(), nullable=False),
        sa.Column("value_mean", sa.Double(), nullable=False),
        sa.Column("p50", sa.Double(), nullable=False),
        sa.Column("p95", sa.Double(), nullable=False),
        sa.Column("p99", sa.Double(), nullable=False),
        sa.Column("anomaly_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.CheckConstraint("granularity IN ('hour', 'day')", name=op.f("ck_model_monitoring_rollups__granularity")),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_model_monitoring_rollups__deployment_id__deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_model_monitoring_rollups__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_monitoring_rollups")),
        sa.UniqueConstraint(
            "deployment_id",
            "metric_name",
            "granularity",
            "bucket_start",
            name="uq_model_monitoring_rollups__bucket",
        ),
    )
    op.create_index(
        "ix_model_monitoring_rollups__org_bucket",
        TABLE,
        ["organization_id", "granularity", "bucket_start"],
    )
    op.execute(
        f"CREATE TRIGGER trg_{TABLE}__updated_at BEFORE UPDATE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION mlops_set_updated_at()"
    )
    # the same trigger function as model_monitoring: the organization always follows the deployment
    op.execute(
        f"CREATE TRIGGER trg_{TABLE}__organization BEFORE INSERT OR UPDATE OF deployment_id, organization_id "
        f"ON {TABLE} FOR EACH ROW EXECUTE FUNCTION mlops_monitoring_organization()"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {ROLE}")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {TABLE} USING (organization_id = {ORG}) "
        f"WITH CHECK (organization_id = {ORG})"
    )


def downgrade() -> None:
    op.drop_table(TABLE)
