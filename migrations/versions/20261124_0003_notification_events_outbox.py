"""Transactional event outbox: `notification_events`.

Why: every flow leaves its user-visible consequences here, in the same transaction as the change, so an
event exists if and only if the change committed; notification dispatch is its only consumer. Rows are
tenant rows: RLS as for every organization-scoped table, and a row may only point at the acting
organization's project and deployment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:21:55.399053
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ORG = "(SELECT mlops_current_org())"
CHECK = (
    f"organization_id = {ORG}"
    " AND (project_id IS NULL OR EXISTS (SELECT 1 FROM projects p WHERE p.id = project_id))"
    " AND (deployment_id IS NULL OR EXISTS (SELECT 1 FROM deployments d WHERE d.id = deployment_id))"
)


def upgrade() -> None:
    op.create_table(
        "notification_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=True),
        sa.Column("deployment_id", sa.UUID(), nullable=True),
        sa.Column("trigger_type", sa.String(length=50), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=20), server_default="info", nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("dedup_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "severity IN ('info', 'low', 'medium', 'high', 'critical')",
            name=op.f("ck_notification_events__severity"),
        ),
        sa.CheckConstraint(
            "trigger_type IN ('alert', 'deployment', 'model_update', 'experiment_complete')",
            name=op.f("ck_notification_events__trigger_type"),
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_notification_events__deployment_id__deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notification_events__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_notification_events__project_id__projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
        sa.UniqueConstraint(
            "organization_id", "dedup_key", name=op.f("uq_notification_events__organization_id_dedup_key")
        ),
    )
    op.create_index(
        "ix_notification_events__pending",
        "notification_events",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.execute("GRANT SELECT, INSERT, UPDATE ON notification_events TO mlops_app")
    op.execute("ALTER TABLE notification_events ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON notification_events USING (organization_id = {ORG}) WITH CHECK ({CHECK})"
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notification_events__pending",
        table_name="notification_events",
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.drop_table("notification_events")
