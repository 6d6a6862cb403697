"""Promotion: stage transitions, artifact checksum, at most one production version per model.

Why: the promotion flow records every stage transition (version, from, to, actor, key, reason, gates) in
`model_stage_transitions`, in the same transaction as the change, so the registry's history is queryable
and retention knows when a version retired. `model_versions.artifact_sha256` lets registration tell the
same artifact (no-op) from a different one (conflict). The partial unique index makes "one production
version per model" a database guarantee; the upgrade refuses to run while a model has two.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 19:26:47.576970
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ORG = "(SELECT mlops_current_org())"
CHECK = (
    f"organization_id = {ORG}"
    " AND EXISTS (SELECT 1 FROM models m WHERE m.id = model_id)"
    " AND EXISTS (SELECT 1 FROM model_versions v WHERE v.id = model_version_id AND v.model_id = model_id)"
)


def upgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE offenders text;
        BEGIN
            SELECT string_agg(model_id::text, ', ') INTO offenders FROM (
                SELECT model_id FROM model_versions WHERE stage = 'production' GROUP BY model_id HAVING count(*) > 1
            ) twice;
            IF offenders IS NOT NULL THEN
                RAISE EXCEPTION 'models with more than one production version: %; archive all but one first', offenders;
            END IF;
        END
        $$
        """
    )
    op.create_table(
        "model_stage_transitions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=False),
        sa.Column("model_version_id", sa.UUID(), nullable=False),
        sa.Column("from_stage", sa.String(length=50), nullable=True),
        sa.Column("to_stage", sa.String(length=50), nullable=False),
        sa.Column("actor_user_id", sa.UUID(), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("forced", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "gate_results",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "from_stage IS NULL OR from_stage IN ('development', 'staging', 'production', 'archived')",
            name=op.f("ck_model_stage_transitions__from_stage"),
        ),
        sa.CheckConstraint(
            "to_stage IN ('development', 'staging', 'production', 'archived')",
            name=op.f("ck_model_stage_transitions__to_stage"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_model_stage_transitions__actor_user_id__users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_model_stage_transitions__api_key_id__api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_stage_transitions__model_id__models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_stage_transitions__model_version_id__model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_model_stage_transitions__organization_id__organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_stage_transitions")),
    )
    op.create_index(
        op.f("ix_model_stage_transitions__model_id_created_at"),
        "model_stage_transitions",
        ["model_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_model_stage_transitions__model_version_id_created_at"),
        "model_stage_transitions",
        ["model_version_id", "created_at"],
        unique=False,
    )
    op.execute("GRANT SELECT, INSERT ON model_stage_transitions TO mlops_app")
    op.execute("ALTER TABLE model_stage_transitions ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON model_stage_transitions "
        f"USING (organization_id = {ORG}) WITH CHECK ({CHECK})"
    )
    op.add_column("model_versions", sa.Column("artifact_sha256", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_model_versions__one_production",
        "model_versions",
        ["model_id"],
        unique=True,
        postgresql_where=sa.text("stage = 'production'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_model_versions__one_production",
        table_name="model_versions",
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.drop_column("model_versions", "artifact_sha256")
    op.drop_index(op.f("ix_model_stage_transitions__model_version_id_created_at"), table_name="model_stage_transitions")
    op.drop_index(op.f("ix_model_stage_transitions__model_id_created_at"), table_name="model_stage_transitions")
    op.drop_table("model_stage_transitions")
