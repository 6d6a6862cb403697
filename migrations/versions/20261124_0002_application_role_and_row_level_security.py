"""Application role and row-level security keyed by the acting organization.

Why: tenancy is enforced by the database, not only by our code. Application sessions run as the
non-superuser role `mlops_app` (`set_config('role', ...)` per transaction) with the acting organization in
`app.organization_id`; every organization-scoped table, and every child table through its parent, admits
only that organization's rows. Inserts and updates are checked too, including the parents a row points at,
so a row of organization A can never reference a project, model, version or deployment of B. Unset
organization: nothing is visible. Owners and superusers (migrations, seeding, authentication, the
cross-organization scheduler) bypass RLS; other services connecting as a non-owner role get the same
policies and must set `app.organization_id` too.

The acting organization is read as `(SELECT mlops_current_org())`: a scalar subquery, so PostgreSQL computes
it once per statement (an InitPlan) instead of once per row. `audit_logs` is append-only for the application
role (SELECT, INSERT).

Downgrade drops the policies and grants; the role itself is cluster-wide and is dropped only when no
other database still uses it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "mlops_app"
ORG = "(SELECT mlops_current_org())"


def visible(table: str, column: str, alias: str = "p") -> str:
    """True when the parent row `column` points at is visible (hence in the acting organization)."""
    return f"EXISTS (SELECT 1 FROM {table} {alias} WHERE {alias}.id = {column})"


def optional(table: str, column: str) -> str:
    return f"({column} IS NULL OR {visible(table, column)})"


def member(user_column: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM organization_memberships m "
        f"WHERE m.user_id = {user_column} AND m.organization_id = {ORG})"
    )


# table -> (USING: which rows the acting organization sees, WITH CHECK: which rows it may write)
POLICIES: dict[str, tuple[str, str]] = {
    "organizations": (f"id = {ORG}", f"id = {ORG}"),
    "users": (member("users.id"), member("users.id")),
    "organization_memberships": (f"organization_id = {ORG}", f"organization_id = {ORG}"),
    "projects": (f"organization_id = {ORG}", f"organization_id = {ORG}"),
    "project_members": (
        visible("projects", "project_id"),
        f"{visible('projects', 'project_id')} AND {member('user_id')}",
    ),
    "models": (
        f"organization_id = {ORG}",
        f"organization_id = {ORG} AND {visible('projects', 'project_id')}",
    ),
    "model_versions": (visible("models", "model_id"), visible("models", "model_id")),
    "experiments": (
        f"organization_id = {ORG}",
        f"organization_id = {ORG} AND {visible('projects', 'project_id')} AND {optional('models', 'model_id')}",
    ),
    "experiment_runs": (visible("experiments", "experiment_id"), visible("experiments", "experiment_id")),
    "run_metrics": (visible("experiment_runs", "run_id"), visible("experiment_runs", "run_id")),
    "deployments": (
        f"organization_id = {ORG}",
        f"organization_id = {ORG} AND {visible('projects', 'project_id')}"
        f" AND {visible('model_versions', 'model_version_id')}",
    ),
    "deployment_history": (
        visible("deployments", "deployment_id"),
        f"{visible('deployments', 'deployment_id')} AND {visible('model_versions', 'model_version_id', 'v')}",
    ),
    "model_monitoring": (visible("deployments", "deployment_id"), visible("deployments", "deployment_id")),
    "data_drift_reports": (visible("deployments", "deployment_id"), visible("deployments", "deployment_id")),
    "alerts": (
        f"organization_id = {ORG}",
        f"organization_id = {ORG} AND {optional('deployments', 'deployment_id')}",
    ),
    "api_keys": (f"organization_id = {ORG}", f"organization_id = {ORG} AND {member('user_id')}"),
    "audit_logs": (f"organization_id = {ORG}", f"organization_id = {ORG}"),
    "notification_channels": (f"organization_id = {ORG}", f"organization_id = {ORG}"),
    "notification_rules": (
        f"organization_id = {ORG}",
        f"organization_id = {ORG} AND {visible('notification_channels', 'channel_id')}"
        f" AND {optional('projects', 'project_id')} AND {optional('deployments', 'deployment_id')}",
    ),
}
APPEND_ONLY = {"audit_logs"}


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
            IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                EXECUTE format('GRANT {ROLE} TO %I', current_user);
            END IF;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION mlops_current_org() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT NULLIF(current_setting('app.organization_id', true), '')::uuid $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    for table, (using, check) in POLICIES.items():
        privileges = "SELECT, INSERT" if table in APPEND_ONLY else "SELECT, INSERT, UPDATE, DELETE"
        op.execute(f"GRANT {privileges} ON {table} TO {ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({using}) WITH CHECK ({check})")


def downgrade() -> None:
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"REVOKE ALL ON {table} FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    op.execute("DROP FUNCTION IF EXISTS mlops_current_org()")
    op.execute(
        f"""
        DO $$
        BEGIN
            DROP ROLE IF EXISTS {ROLE};
        EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
            RAISE NOTICE 'role {ROLE} is still used by another database; kept';
        END
        $$
        """
    )
