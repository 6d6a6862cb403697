"""Metric aggregation: an invalidation log filled by triggers, anomaly marking, finite values, metric alerts.

Why (flow `aggregate-metrics`):
- `model_monitoring_invalidations`: the hour buckets touched by inserted or updated points, written by
  statement-level triggers in the writer's own transaction. A run claims rows, recomputes exactly those
  buckets from raw points and deletes the claimed rows in the same transaction. A point committed late by a
  long transaction is never skipped (its invalidation becomes visible when, and only when, it commits), and a
  killed run leaves its claims in place for the next one. Deleting points invalidates nothing: raw points are
  deleted by retention, which keeps their rollups, or by deleting the deployment, which cascades them.
- `model_monitoring_aggregation_state`: per organization, when its full backfill finished (points written
  before this revision have no invalidation rows).
- The per-row trigger of `model_monitoring` also sets `is_anomaly` for points outside their thresholds
  (a writer's explicit `true` stays), so every reader sees the same flag.
- A CHECK refuses NaN and infinite values (they would poison sums and percentiles), added NOT VALID so the
  hot table is not scanned under lock; older rows are excluded by the aggregation's own filter.
- At most one unresolved alert per deployment and metric alert type (`high_latency`, `error_rate`,
  `performance_degradation`), built concurrently.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "mlops_app"
ORG = "(SELECT mlops_current_org())"

POINT = """
CREATE OR REPLACE FUNCTION mlops_monitoring_point() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT organization_id INTO NEW.organization_id FROM deployments WHERE id = NEW.deployment_id;
    NEW.is_anomaly := coalesce(NEW.is_anomaly, false)
        OR coalesce(NEW.value < NEW.threshold_min, false)
        OR coalesce(NEW.value > NEW.threshold_max, false);
    RETURN NEW;
END
$$
"""
INVALIDATE = """
CREATE OR REPLACE FUNCTION mlops_monitoring_invalidate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO model_monitoring_invalidations (deployment_id, organization_id, metric_name, bucket_start)
    SELECT DISTINCT deployment_id, organization_id, metric_name, date_trunc('hour', recorded_at, 'UTC')
    FROM changed_points WHERE recorded_at IS NOT NULL;
    RETURN NULL;
END
$$
"""
METRIC_ALERTS = "('high_latency', 'error_rate', 'performance_degradation')"


def upgrade() -> None:
    op.create_table(
        "model_monitoring_invalidations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("deployment_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("metric_name", sa.String(length=100), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_model_monitoring_invalidations__deployment_id__deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_model_monitoring_invalidations__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_monitoring_invalidations")),
    )
    op.create_index(
        "ix_model_monitoring_invalidations__org_id", "model_monitoring_invalidations", ["organization_id", "id"]
    )
    op.create_table(
        "model_monitoring_aggregation_state",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("backfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_model_monitoring_aggregation_state__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_monitoring_aggregation_state")),
        sa.UniqueConstraint("organization_id", name=op.f("uq_model_monitoring_aggregation_state__organization_id")),
    )
    for table in ("model_monitoring_invalidations", "model_monitoring_aggregation_state"):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING (organization_id = {ORG}) "
            f"WITH CHECK (organization_id = {ORG})"
        )

    op.execute(POINT)
    op.execute("DROP TRIGGER trg_model_monitoring__organization ON model_monitoring")
    op.execute(
        "CREATE TRIGGER trg_model_monitoring__organization BEFORE INSERT OR UPDATE "
        "ON model_monitoring FOR EACH ROW EXECUTE FUNCTION mlops_monitoring_point()"
    )
    op.execute(INVALIDATE)
    op.execute(
        "CREATE TRIGGER trg_model_monitoring__invalidate_insert AFTER INSERT ON model_monitoring "
        "REFERENCING NEW TABLE AS changed_points FOR EACH STATEMENT EXECUTE FUNCTION mlops_monitoring_invalidate()"
    )
    # an update invalidates the buckets a point leaves and the ones it enters
    op.execute(
        "CREATE TRIGGER trg_model_monitoring__invalidate_update_old AFTER UPDATE ON model_monitoring "
        "REFERENCING OLD TABLE AS changed_points FOR EACH STATEMENT EXECUTE FUNCTION mlops_monitoring_invalidate()"
    )
    op.execute(
        "CREATE TRIGGER trg_model_monitoring__invalidate_update_new AFTER UPDATE ON model_monitoring "
        "REFERENCING NEW TABLE AS changed_points FOR EACH STATEMENT EXECUTE FUNCTION mlops_monitoring_invalidate()"
    )
    op.execute(
        "ALTER TABLE model_monitoring ADD CONSTRAINT ck_model_monitoring__value_finite "
        "CHECK (value <> 'NaN'::float8 AND value <> 'Infinity'::float8 AND value <> '-Infinity'::float8) NOT VALID"
    )
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_alerts__one_unresolved_metric_alert "
            f"ON alerts (deployment_id, alert_type) WHERE status <> 'resolved' AND alert_type IN {METRIC_ALERTS}"
        )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS uq_alerts__one_unresolved_metric_alert")
    op.execute("ALTER TABLE model_monitoring DROP CONSTRAINT ck_model_monitoring__value_finite")
    for suffix in ("insert", "update_old", "update_new"):
        op.execute(f"DROP TRIGGER trg_model_monitoring__invalidate_{suffix} ON model_monitoring")
    op.execute("DROP FUNCTION mlops_monitoring_invalidate()")
    op.execute("DROP TRIGGER trg_model_monitoring__organization ON model_monitoring")
    op.execute(
        "CREATE TRIGGER trg_model_monitoring__organization BEFORE INSERT OR UPDATE OF deployment_id, organization_id "
        "ON model_monitoring FOR EACH ROW EXECUTE FUNCTION mlops_monitoring_organization()"
    )
    op.execute("DROP FUNCTION mlops_monitoring_point()")
    op.drop_table("model_monitoring_aggregation_state")
    op.drop_table("model_monitoring_invalidations")
