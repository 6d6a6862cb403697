"""Drift detection: one report per deployment and window; at most one unresolved drift alert per deployment.

Why: the drift flow upserts its report on (deployment, period_start, period_end), so a rerun for the same
window updates the report instead of adding a second; and it updates the deployment's unresolved
`data_drift` alert while one is open instead of raising another. The upgrade refuses to run, naming the
duplicates, while existing rows break either rule.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 19:44:14.009986
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


DUPLICATES = """
DO $$
DECLARE reports text; alerts text;
BEGIN
    SELECT string_agg(DISTINCT deployment_id::text, ', ') INTO reports FROM (
        SELECT deployment_id FROM data_drift_reports
        GROUP BY deployment_id, period_start, period_end HAVING count(*) > 1) d;
    SELECT string_agg(deployment_id::text, ', ') INTO alerts FROM (
        SELECT deployment_id FROM alerts WHERE alert_type = 'data_drift' AND status <> 'resolved'
        GROUP BY deployment_id HAVING count(*) > 1) a;
    IF reports IS NOT NULL THEN
        RAISE EXCEPTION 'deployments with two drift reports for one window: %; delete the duplicates first', reports;
    END IF;
    IF alerts IS NOT NULL THEN
        RAISE EXCEPTION 'deployments with several unresolved drift alerts: %; resolve all but one first', alerts;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(DUPLICATES)
    op.create_index(
        "uq_alerts__one_unresolved_drift_alert",
        "alerts",
        ["deployment_id"],
        unique=True,
        postgresql_where=sa.text("alert_type = 'data_drift' AND status <> 'resolved'"),
    )
    op.create_unique_constraint(
        op.f("uq_data_drift_reports__deployment_id_period_start_period_end"),
        "data_drift_reports",
        ["deployment_id", "period_start", "period_end"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_data_drift_reports__deployment_id_period_start_period_end"), "data_drift_reports", type_="unique"
    )
    op.drop_index(
        "uq_alerts__one_unresolved_drift_alert",
        table_name="alerts",
        postgresql_where=sa.text("alert_type = 'data_drift' AND status <> 'resolved'"),
    )
