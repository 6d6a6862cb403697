"""Least-privilege roles, per-table grants, FORCE RLS, write checks on every reference, case-insensitive e-mails.

Why (issues 14, 15, 17): row-level security held only while the application behaved. Commands connected as
the schema owner and dropped to `mlops_app` per transaction, so `RESET ROLE` led back to a role that bypasses
RLS and may rewrite `audit_logs`. From this revision:

- `mlops_login` (LOGIN NOINHERIT, member of `mlops_app` only) is the role of `DATABASE_URL`: it holds no
  table privilege itself, so `RESET ROLE` / `SET ROLE <owner>` / `SET SESSION AUTHORIZATION` lead nowhere.
- `mlops_maintenance` (LOGIN, BYPASSRLS, no membership) is the role of `system_session()`: listing the
  organizations for schedulers, authentication lookups (the organization is not known before the key is),
  platform administration of organizations/users/memberships, retention. BYPASSRLS is unavoidable because all
  of its work is cross-organization by definition; what it can reach is bounded by MAINTENANCE_GRANTS below
  instead (no DDL, no UPDATE of audit rows, no table it does not need). It is NOT reachable from an
  application connection: the login role is not a member of it.
- `mlops_app` gets per-table, per-column grants (APP_GRANTS): it can no longer delete organizations, change an
  organization's plan, status or limits, write users or memberships; `audit_logs` is SELECT/INSERT only for
  everyone but retention (maintenance has DELETE, nobody has UPDATE).
- FORCE ROW LEVEL SECURITY on every tenant table, so even the owner's accidental application use is filtered.
- The always-true policy comparisons (`m.user_id = m.user_id` in api_keys and project_members,
  `v.model_id = v.model_id` in model_stage_transitions) are qualified, and every reference a tenant row holds
  (users and other tenant rows) must point inside the acting organization (WITH CHECK).
- `users.email` is unique case-insensitively (`lower(email)`, built CONCURRENTLY).

Installations whose DBA creates roles by hand (managed PostgreSQL): run `db/roles.sql` first; the role
creation below is skipped for roles that exist. Adding a table: add it to TENANT_TABLES/APP_GRANTS (and
MAINTENANCE_GRANTS if cross-organization code reads it) in a new revision; `tests/db/test_roles.py` fails for
a public table without a policy, FORCE RLS or a grant decision.

Zero downtime: every statement is catalog-only; `lock_timeout` makes the migration fail fast instead of
queueing writers behind it; the e-mail index is built CONCURRENTLY outside the transaction.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mlops_app"
LOGIN = "mlops_login"
MAINTENANCE = "mlops_maintenance"
ORG = "(SELECT mlops_current_org())"
RW = "SELECT, INSERT, UPDATE, DELETE"

# What the application role may do per table (the decision for every tenant table; the integrator adds new
# tables here or in their own revision). Column lists are the only columns an UPDATE may set.
APP_GRANTS: dict[str, str] = {
    # settings and display fields only: plan, status, limits and deletion belong to the maintenance path
    "organizations": "SELECT, UPDATE (name, billing_email, settings)",
    "users": "SELECT",  # global rows: changed by the user themself or the maintenance path only
    "organization_memberships": "SELECT",  # joining needs an accepted invitation (maintenance path)
    "projects": RW,
    "project_members": RW,
    "models": RW,
    "model_versions": RW,
    "experiments": RW,
    "experiment_runs": RW,
    "run_metrics": RW,
    "deployments": RW,
    "deployment_history": "SELECT, INSERT, UPDATE",  # history is never deleted by the application
    "model_monitoring": RW,
    "model_monitoring_rollups": RW,
    "data_drift_reports": RW,
    "alerts": RW,
    "api_keys": "SELECT, INSERT, UPDATE (name, is_active, last_used_at, expires_at, deleted_at)",
    "audit_logs": "SELECT, INSERT",  # append-only
    "notification_channels": RW,
    "notification_rules": RW,
    "notification_events": "SELECT, INSERT, UPDATE",
    "model_stage_transitions": "SELECT, INSERT",
    "model_monitoring_invalidations": RW,  # aggregation claims (deletes) what the triggers wrote
    "model_monitoring_aggregation_state": RW,
    "retention_archives": "SELECT",  # written by retention only (maintenance role)
}
TENANT_TABLES: tuple[str, ...] = tuple(APP_GRANTS)

# What the maintenance role (BYPASSRLS) may touch, and for which code path.
MAINTENANCE_GRANTS: dict[str, str] = {
    "organizations": "SELECT, INSERT, UPDATE",  # schedulers list them; platform admin; no DELETE (soft delete)
    "users": "SELECT, INSERT, UPDATE",  # authentication, invitations, a user's own profile
    "organization_memberships": "SELECT, INSERT, UPDATE, DELETE",  # invitations, acceptance, removal
    "projects": "SELECT, DELETE",  # project roles at authentication; retention purges soft-deleted ones
    "project_members": "SELECT",
    "api_keys": "SELECT, UPDATE (last_used_at)",  # lookup by hash before the organization is known
    "audit_logs": "SELECT, INSERT, DELETE",  # platform actions are audited; retention archives then deletes
    "notification_channels": "SELECT, UPDATE (configuration)",  # `mlops secrets rotate` re-encrypts all
    "model_monitoring": "SELECT, DELETE",  # retention: raw points covered by rollups
    "model_monitoring_rollups": "SELECT, DELETE",  # retention: rollups older than a year
    "deployments": "SELECT, DELETE",  # schedulers find work per organization; retention purges soft-deleted
    # dispatch claims events; retention deletes old ones and reports its own failure
    "notification_events": "SELECT, INSERT, UPDATE, DELETE",
    "notification_rules": "SELECT",  # ... and matches them with each organization's rules
    # enforce-retention, the one flow that must delete across organizations (and audit rows):
    "model_monitoring_invalidations": "SELECT",  # raw points of a pending hour are kept
    "retention_archives": RW,
    "experiments": "SELECT, DELETE",  # purge of soft-deleted experiments (children cascade)
    "experiment_runs": "SELECT",
    "models": "SELECT, DELETE",
    "model_versions": "SELECT, UPDATE (artifact_purged_at), DELETE",
    "deployment_history": "SELECT",
    "model_stage_transitions": "SELECT",  # when a version was retired
    "alerts": "SELECT, INSERT",  # a failed retention run raises one
}

ORG_MEMBER = "EXISTS (SELECT 1 FROM organization_memberships m WHERE m.user_id = {col} AND m.organization_id = " + ORG
JOINED = ORG_MEMBER + " AND m.joined_at IS NOT NULL)"
KNOWN = ORG_MEMBER + ")"

# Every reference a tenant row holds (from pg_constraint), checked on write: a user reference must be a member
# of the acting organization (joined, for the identities a row acts as), any other reference must be visible
# (so in the acting organization, through that table's own policy).
REFERENCES: dict[str, list[tuple[str, str]]] = {
    "projects": [("created_by", "users")],
    "project_members": [("project_id", "projects"), ("user_id", "joined"), ("added_by", "users")],
    "models": [("project_id", "projects"), ("created_by", "users")],
    "model_versions": [("model_id", "models"), ("created_by", "users")],
    "experiments": [("project_id", "projects"), ("model_id", "models"), ("created_by", "users")],
    "experiment_runs": [("experiment_id", "experiments")],
    "run_metrics": [("run_id", "experiment_runs")],
    "deployments": [("project_id", "projects"), ("model_version_id", "model_versions"), ("created_by", "users")],
    "deployment_history": [
        ("deployment_id", "deployments"),
        ("model_version_id", "model_versions"),
        ("performed_by", "users"),
    ],
    "model_monitoring": [("deployment_id", "deployments")],
    "model_monitoring_rollups": [("deployment_id", "deployments")],
    "model_monitoring_invalidations": [("deployment_id", "deployments")],
    "data_drift_reports": [("deployment_id", "deployments")],
    "alerts": [("deployment_id", "deployments"), ("acknowledged_by", "users"), ("resolved_by", "users")],
    "api_keys": [("user_id", "joined")],
    "audit_logs": [("user_id", "users"), ("api_key_id", "api_keys")],
    "notification_channels": [("created_by", "users")],
    "notification_rules": [
        ("channel_id", "notification_channels"),
        ("project_id", "projects"),
        ("deployment_id", "deployments"),
        ("created_by", "users"),
    ],
    "notification_events": [("project_id", "projects"), ("deployment_id", "deployments")],
    "model_stage_transitions": [
        ("model_id", "models"),
        ("model_version_id", "model_versions"),
        ("actor_user_id", "users"),
        ("api_key_id", "api_keys"),
    ],
}
# Consistency a reference alone does not give: the version really is a version of the model.
EXTRA_CHECKS = {
    "model_stage_transitions": "EXISTS (SELECT 1 FROM model_versions v WHERE v.id = "
    "model_stage_transitions.model_version_id AND v.model_id = model_stage_transitions.model_id)"
}
ORG_COLUMN_TABLES = {
    "organizations": "id",
    "organization_memberships": "organization_id",
    "projects": "organization_id",
    "models": "organization_id",
    "experiments": "organization_id",
    "deployments": "organization_id",
    "model_monitoring": "organization_id",
    "model_monitoring_rollups": "organization_id",
    "model_monitoring_invalidations": "organization_id",
    "alerts": "organization_id",
    "api_keys": "organization_id",
    "audit_logs": "organization_id",
    "notification_channels": "organization_id",
    "notification_rules": "organization_id",
    "notification_events": "organization_id",
    "model_stage_transitions": "organization_id",
}


def reference_check(table: str, column: str, target: str) -> str:
    qualified = f"{table}.{column}"
    if target == "joined":
        return JOINED.format(col=qualified)
    if target == "users":
        inner = KNOWN.format(col=qualified)
    else:
        inner = f"EXISTS (SELECT 1 FROM {target} r WHERE r.id = {qualified})"
    return f"({qualified} IS NULL OR {inner})"


def write_check(table: str) -> str:
    parts = []
    if table in ORG_COLUMN_TABLES:
        parts.append(f"{table}.{ORG_COLUMN_TABLES[table]} = {ORG}")
    parts += [reference_check(table, column, target) for column, target in REFERENCES.get(table, [])]
    if table in EXTRA_CHECKS:
        parts.append(EXTRA_CHECKS[table])
    return " AND ".join(parts)


def _create_roles() -> None:
    # Roles are cluster-wide: created once, reused by every database on the server. A role that exists (made
    # by a DBA with db/roles.sql) is left as it is; without CREATEROLE the migration says what to run.
    op.execute(
        f"""
        DO $$
        DECLARE
            can_create boolean := (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user);
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{LOGIN}') THEN
                IF NOT can_create THEN
                    RAISE EXCEPTION 'role {LOGIN} does not exist and % cannot create roles: run db/roles.sql as '
                        'a role administrator first', current_user;
                END IF;
                CREATE ROLE {LOGIN} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MAINTENANCE}') THEN
                IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                    RAISE EXCEPTION 'role {MAINTENANCE} does not exist and only a superuser can create a '
                        'BYPASSRLS role: run db/roles.sql as a role administrator first';
                END IF;
                CREATE ROLE {MAINTENANCE} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS;
            END IF;
            IF NOT pg_has_role('{LOGIN}', '{APP}', 'MEMBER') THEN
                GRANT {APP} TO {LOGIN};
            END IF;
            BEGIN
                EXECUTE format('GRANT CONNECT ON DATABASE %I TO {LOGIN}, {MAINTENANCE}', current_database());
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE NOTICE 'CONNECT on this database is granted by its owner (db/roles.sql)';
            END;
        END
        $$
        """
    )


def upgrade() -> None:
    # fail fast instead of queueing every writer behind a lock we wait for (zero-downtime rule)
    op.execute("SET LOCAL lock_timeout = '5s'")
    # Take every lock up front, children before parents, in the order a writer takes them (the table it writes,
    # then what its triggers and policy checks read): altering them one by one deadlocks with a monitoring
    # insert, which holds model_monitoring and then reads deployments and writes invalidations.
    lock_order = ["model_monitoring", *(t for t in reversed(TENANT_TABLES) if t != "model_monitoring")]
    op.execute(f"LOCK TABLE {', '.join(lock_order)} IN ACCESS EXCLUSIVE MODE")
    _create_roles()
    op.execute(f"GRANT USAGE ON SCHEMA public TO {MAINTENANCE}")
    for table, privileges in APP_GRANTS.items():
        # revoke and grant in one transaction: the application never sees a table without its grants
        op.execute(f"REVOKE ALL ON {table} FROM {APP}")
        op.execute(f"GRANT {privileges} ON {table} TO {APP}")
    for table, privileges in MAINTENANCE_GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {MAINTENANCE}")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    for table in REFERENCES:
        op.execute(f"ALTER POLICY tenant_isolation ON {table} WITH CHECK ({write_check(table)})")
    with op.get_context().autocommit_block():
        # a failed earlier CONCURRENTLY build leaves an invalid index behind: drop it, then build
        op.execute(
            """
            DO $$ BEGIN
                IF EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                           WHERE c.relname = 'uq_users__lower_email' AND NOT i.indisvalid) THEN
                    DROP INDEX uq_users__lower_email;
                END IF;
            END $$
            """
        )
        op.execute("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_users__lower_email ON users (lower(email))")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS uq_users__lower_email")
    for table in REFERENCES:
        op.execute(f"ALTER POLICY tenant_isolation ON {table} WITH CHECK ({OLD_CHECKS_BY_TABLE[table]})")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    for table in MAINTENANCE_GRANTS:
        op.execute(f"REVOKE ALL ON {table} FROM {MAINTENANCE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {MAINTENANCE}")
    for table in TENANT_TABLES:
        op.execute(f"REVOKE ALL ON {table} FROM {APP}")
        op.execute(f"GRANT {OLD_APP_GRANTS.get(table, RW)} ON {table} TO {APP}")
    # the cluster-wide login roles stay: other databases on the server may use them
    op.execute(
        f"DO $$ BEGIN EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {LOGIN}, {MAINTENANCE}', "
        "current_database()); END $$"
    )


OLD_APP_GRANTS = {
    "audit_logs": "SELECT, INSERT",
    "notification_events": "SELECT, INSERT, UPDATE",
    "model_stage_transitions": "SELECT, INSERT",
}


# ruff: noqa: E501  (the stored expressions, verbatim)
# The write checks before this revision (as pg_policies printed them), restored by downgrade.
OLD_CHECKS_BY_TABLE: dict[str, str] = {
    "projects": "(organization_id = ( SELECT mlops_current_org() AS mlops_current_org))",
    "project_members": "((EXISTS ( SELECT 1 FROM projects p WHERE (p.id = project_members.project_id))) AND (EXISTS ( SELECT 1 FROM organization_memberships m WHERE ((m.user_id = m.user_id) AND (m.organization_id = ( SELECT mlops_current_org() AS mlops_current_org))))))",
    "models": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND (EXISTS ( SELECT 1 FROM projects p WHERE (p.id = models.project_id))))",
    "model_versions": "(EXISTS ( SELECT 1 FROM models p WHERE (p.id = model_versions.model_id)))",
    "experiments": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND (EXISTS ( SELECT 1 FROM projects p WHERE (p.id = experiments.project_id))) AND ((model_id IS NULL) OR (EXISTS ( SELECT 1 FROM models p WHERE (p.id = experiments.model_id)))))",
    "experiment_runs": "(EXISTS ( SELECT 1 FROM experiments p WHERE (p.id = experiment_runs.experiment_id)))",
    "run_metrics": "(EXISTS ( SELECT 1 FROM experiment_runs p WHERE (p.id = run_metrics.run_id)))",
    "deployments": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND (EXISTS ( SELECT 1 FROM projects p WHERE (p.id = deployments.project_id))) AND (EXISTS ( SELECT 1 FROM model_versions p WHERE (p.id = deployments.model_version_id))))",
    "deployment_history": "((EXISTS ( SELECT 1 FROM deployments p WHERE (p.id = deployment_history.deployment_id))) AND (EXISTS ( SELECT 1 FROM model_versions v WHERE (v.id = deployment_history.model_version_id))))",
    "model_monitoring": "(organization_id = ( SELECT mlops_current_org() AS mlops_current_org))",
    "model_monitoring_rollups": "(organization_id = ( SELECT mlops_current_org() AS mlops_current_org))",
    "model_monitoring_invalidations": "(organization_id = ( SELECT mlops_current_org() AS mlops_current_org))",
    "data_drift_reports": "(EXISTS ( SELECT 1 FROM deployments p WHERE (p.id = data_drift_reports.deployment_id)))",
    "alerts": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND ((deployment_id IS NULL) OR (EXISTS ( SELECT 1 FROM deployments p WHERE (p.id = alerts.deployment_id)))))",
    "api_keys": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND (EXISTS ( SELECT 1 FROM organization_memberships m WHERE ((m.user_id = m.user_id) AND (m.organization_id = ( SELECT mlops_current_org() AS mlops_current_org))))))",
    "audit_logs": "(organization_id = ( SELECT mlops_current_org() AS mlops_current_org))",
    "notification_channels": "(organization_id = ( SELECT mlops_current_org() AS mlops_current_org))",
    "notification_rules": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND (EXISTS ( SELECT 1 FROM notification_channels p WHERE (p.id = notification_rules.channel_id))) AND ((project_id IS NULL) OR (EXISTS ( SELECT 1 FROM projects p WHERE (p.id = notification_rules.project_id)))) AND ((deployment_id IS NULL) OR (EXISTS ( SELECT 1 FROM deployments p WHERE (p.id = notification_rules.deployment_id)))))",
    "notification_events": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND ((project_id IS NULL) OR (EXISTS ( SELECT 1 FROM projects p WHERE (p.id = notification_events.project_id)))) AND ((deployment_id IS NULL) OR (EXISTS ( SELECT 1 FROM deployments d WHERE (d.id = notification_events.deployment_id)))))",
    "model_stage_transitions": "((organization_id = ( SELECT mlops_current_org() AS mlops_current_org)) AND (EXISTS ( SELECT 1 FROM models m WHERE (m.id = model_stage_transitions.model_id))) AND (EXISTS ( SELECT 1 FROM model_versions v WHERE ((v.id = model_stage_transitions.model_version_id) AND (v.model_id = v.model_id)))))",
}
