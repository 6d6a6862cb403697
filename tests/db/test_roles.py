"""Least-privilege roles: the login role cannot leave its tenant, even with injected SQL; grants; policies.

Every test here connects as the roles the code uses (`mlops_login` through `session_scope`, the maintenance
role through `system_session`), never as the owner, except to build fixture rows and read the catalog.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError

from db.session import session_scope, system_session
from tests.factories import TENANT_TABLES

# Tables whose rows no application path may reach (none today); anything else needs a grant to some role.
NO_ACCESS_TABLES: set[str] = set()
OWNER = "postgres"  # the embedded server's bootstrap superuser owns the schema in the test suite


def owner_rows(url: str, sql: str, **params):
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        result = conn.execute(text(sql), params).all()
    engine.dispose()
    return result


def refused(session, sql: str, **params) -> str:
    """Run `sql` inside a plain SQL savepoint; return the error message (the test fails when it succeeds).

    A raw SAVEPOINT, not `begin_nested()`: the session's scope hook runs again for an ORM savepoint and would
    restore the role and organization the test is trying to change."""
    session.execute(text("SAVEPOINT probe"))
    try:
        session.execute(text(sql), params)
    except DBAPIError as exc:
        session.execute(text("ROLLBACK TO SAVEPOINT probe"))
        return str(exc.orig)
    session.execute(text("ROLLBACK TO SAVEPOINT probe"))
    pytest.fail(f"succeeded but must be refused: {sql}")


SCOPES = {
    "tenant": lambda alpha: session_scope(alpha["org"]),
    "unscoped": lambda alpha: session_scope(None),
}


class TestTheLoginRoleGoesNowhere:
    @pytest.mark.parametrize("scope", list(SCOPES))
    def test_reset_role_lands_on_a_role_that_reads_nothing(self, tenants_db, scope):
        _, alpha, _ = tenants_db
        with SCOPES[scope](alpha) as s:
            assert s.execute(text("SELECT session_user")).scalar() == "mlops_login"
            s.execute(text("RESET ROLE"))
            assert s.execute(text("SELECT current_user")).scalar() == "mlops_login"
            for table in ("organizations", "users", "audit_logs", "api_keys", "models"):
                assert "permission denied" in refused(s, f"SELECT count(*) FROM {table}")

    @pytest.mark.parametrize("scope", list(SCOPES))
    def test_set_role_owner_and_session_authorization_are_refused(self, tenants_db, scope):
        _, alpha, _ = tenants_db
        with SCOPES[scope](alpha) as s:
            for sql in (f"SET ROLE {OWNER}", "SET ROLE mlops_maintenance", f"SET SESSION AUTHORIZATION {OWNER}"):
                assert "permission denied" in refused(s, sql)
            assert "permission denied" in refused(s, "SELECT set_config('role', 'mlops_maintenance', true)")

    @pytest.mark.parametrize("scope", list(SCOPES))
    def test_pg_authid_and_audit_rewrites_are_refused(self, tenants_db, scope):
        _, alpha, _ = tenants_db
        with SCOPES[scope](alpha) as s:
            assert "permission denied" in refused(s, "SELECT rolpassword FROM pg_authid")
            assert "permission denied" in refused(s, "UPDATE audit_logs SET action = 'forged'")
            assert "permission denied" in refused(s, "DELETE FROM audit_logs")

    def test_the_maintenance_session_cannot_rewrite_audit_or_read_pg_authid(self, tenants_db):
        url, _, _ = tenants_db
        with system_session() as s:
            assert s.execute(text("SELECT current_user")).scalar() == "mlops_maintenance"
            assert "permission denied" in refused(s, "SELECT rolpassword FROM pg_authid")
            assert "permission denied" in refused(s, "UPDATE audit_logs SET action = 'forged'")
            assert "permission denied" in refused(s, "SET ROLE mlops_app")
            assert "permission denied" in refused(s, f"SET ROLE {OWNER}")
            assert "must be owner" in refused(s, "DROP TABLE models")
            assert "permission denied" in refused(s, "SELECT count(*) FROM run_metrics")  # not its business
        assert owner_rows(url, "SELECT count(*) FROM audit_logs WHERE action = 'forged'")[0][0] == 0

    def test_switching_the_organization_later_in_a_transaction_stays_the_application_role(self, tenants_db):
        """What holds after an injected `set_config('app.organization_id', <B>)`: the GUC is settable by anyone
        holding the connection, so the database cannot tell it from the application's own call and the
        transaction does act for B from then on. What it can NOT do: leave `mlops_app` (no owner, no
        BYPASSRLS), rewrite or delete audit rows, delete an organization, change a plan, status or limit,
        write users or memberships. Hence every statement stays parameterised (no injection to begin with)."""
        _, alpha, beta = tenants_db
        with session_scope(alpha["org"]) as s:
            s.execute(text("SELECT set_config('app.organization_id', :b, true)"), {"b": str(beta["org"])})
            assert s.execute(text("SELECT current_user")).scalar() == "mlops_app"
            assert "permission denied" in refused(s, "DELETE FROM organizations")
            assert "permission denied" in refused(s, "UPDATE organizations SET subscription_plan = 'enterprise'")
            assert "permission denied" in refused(s, "UPDATE organizations SET max_users = 1000")
            assert "permission denied" in refused(s, "UPDATE audit_logs SET action = 'x'")
            assert "permission denied" in refused(s, "UPDATE users SET email = 'evil@example.com'")
            assert "permission denied" in refused(
                s,
                "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES (:o, :u, 'admin')",
                o=beta["org"],
                u=alpha["admin"],
            )


class TestGrants:
    def test_application_cannot_delete_organizations_or_change_plans(self, tenants_db):
        url, alpha, _ = tenants_db
        with session_scope(alpha["org"]) as s:
            for column, value in (
                ("subscription_plan", "'enterprise'"),
                ("subscription_status", "'active'"),
                ("max_users", "999"),
                ("max_models", "999"),
                ("deleted_at", "now()"),
            ):
                assert "permission denied" in refused(s, f"UPDATE organizations SET {column} = {value}")
            assert "permission denied" in refused(s, "DELETE FROM organizations")
            # what an organization may change about itself still works
            s.execute(text("UPDATE organizations SET name = 'Alpha Renamed'"))
        assert owner_rows(url, "SELECT name FROM organizations WHERE id = :o", o=alpha["org"])[0][0] == "Alpha Renamed"

    def test_the_storage_allow_list_is_the_operators_not_the_applications(self, tenants_db):
        """`settings.storage.allowed_uris` reaches S3 with the workers' credentials: mlops_app cannot write it
        (revision 0015), while the rest of `settings` (the retention policy) stays the organization's."""
        url, alpha, _ = tenants_db
        grab = """UPDATE organizations SET settings = settings || '{"storage": {"allowed_uris": ["s3://other/"]}}'"""
        with session_scope(alpha["org"]) as s:
            assert "set by the platform operator" in refused(s, grab)
            s.execute(
                text("""UPDATE organizations SET settings = settings || '{"retention": {"audit_logs_days": 400}}'""")
            )
        with system_session() as s:  # platform administration may set it
            s.execute(text(grab + " WHERE id = :o"), {"o": alpha["org"]})
        (settings,) = owner_rows(url, "SELECT settings FROM organizations WHERE id = :o", o=alpha["org"])[0]
        assert settings["storage"] == {"allowed_uris": ["s3://other/"]}
        assert settings["retention"] == {"audit_logs_days": 400}

    def test_users_and_memberships_are_read_only_for_the_application(self, tenants_db):
        _, alpha, _ = tenants_db
        with session_scope(alpha["org"]) as s:
            for sql in (
                "UPDATE users SET is_active = false",
                "DELETE FROM users",
                "INSERT INTO users (email, first_name, last_name) VALUES ('x@y.z', 'X', 'Y')",
                "UPDATE organization_memberships SET role = 'admin'",
                "DELETE FROM organization_memberships",
            ):
                assert "permission denied" in refused(s, sql)

    def test_every_public_table_has_forced_rls_a_policy_and_a_grant_decision(self, tenants_db):
        url, _, _ = tenants_db
        rows = owner_rows(
            url,
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy,
                   has_table_privilege('mlops_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS app,
                   has_table_privilege('mlops_maintenance', c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS maint
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
            """,
        )
        problems = []
        for name, rls, forced, has_policy, app, maint in rows:
            if not (rls and forced and has_policy):
                problems.append(f"{name}: RLS enabled={rls} forced={forced} policy={has_policy}")
            if not (app or maint or name in NO_ACCESS_TABLES):
                problems.append(f"{name}: no grant decision (grant it to mlops_app/mlops_maintenance in its revision)")
        assert problems == []
        assert {r[0] for r in rows} >= set(TENANT_TABLES)

    def test_the_login_role_holds_no_privilege_of_its_own(self, tenants_db):
        url, _, _ = tenants_db
        granted = owner_rows(
            url,
            "SELECT table_name FROM information_schema.role_table_grants WHERE grantee = 'mlops_login'",
        )
        assert granted == []
        (attrs,) = owner_rows(
            url,
            "SELECT rolinherit, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, "
            "ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
            "      WHERE m.member = r.oid) FROM pg_roles r WHERE rolname = 'mlops_login'",
        )
        assert attrs == (False, False, False, False, False, ["mlops_app"])


class TestPolicies:
    def test_no_policy_compares_a_column_with_itself(self, tenants_db):
        url, _, _ = tenants_db
        tautology = re.compile(r"\b(\w+\.\w+) = \1\b")
        found = [
            (table, expr)
            for table, qual, check in owner_rows(url, "SELECT tablename, qual, with_check FROM pg_policies")
            for expr in (qual or "", check or "")
            if tautology.search(expr)
        ]
        assert found == []

    def test_no_row_of_alpha_can_be_pointed_at_a_row_of_beta(self, tenants_db):
        """For every foreign key of every tenant table: as alpha, point one of alpha's rows at beta's row."""
        url, alpha, beta = tenants_db
        references = owner_rows(
            url,
            """
            SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
            WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
            """,
        )
        beta_row = {"users": beta["admin"]}
        for table, sql in TENANT_TABLES.items():
            for row_id, org in owner_rows(url, sql):
                if org == beta["org"]:
                    beta_row.setdefault(table, row_id)
        alpha_row = {}
        for table, sql in TENANT_TABLES.items():
            for row_id, org in owner_rows(url, sql):
                if org == alpha["org"]:
                    alpha_row.setdefault(table, row_id)
        accepted = []
        checked = 0
        for table, column, target in references:
            if table not in alpha_row or target not in beta_row:
                continue
            checked += 1
            with session_scope(alpha["org"]) as s:
                s.execute(text("SAVEPOINT probe"))
                try:
                    stored = s.execute(
                        text(f"UPDATE {table} SET {column} = :b WHERE id = :a RETURNING {column}"),
                        {"b": beta_row[target], "a": alpha_row[table]},
                    ).scalar()
                    # a trigger may put the value back (organization_id follows the deployment): harmless
                    changed = stored == beta_row[target]
                except DBAPIError:
                    changed = False
                s.execute(text("ROLLBACK TO SAVEPOINT probe"))
                if changed:
                    accepted.append(f"{table}.{column} -> {target}")
        assert accepted == []
        assert checked >= 40  # every reference of the spec's tenant tables was tried

    @pytest.mark.parametrize(
        "sql",
        [
            "INSERT INTO api_keys (organization_id, user_id, name, key_hash, key_prefix) "
            "VALUES (:a, :bu, 'stolen', 'sha256:x', 'mlk_x')",
            "INSERT INTO project_members (project_id, user_id, role) VALUES (:p, :bu, 'owner')",
        ],
    )
    def test_alpha_cannot_enrol_a_user_of_beta(self, tenants_db, sql):
        _, alpha, beta = tenants_db
        with session_scope(alpha["org"]) as s:
            message = refused(s, sql, a=alpha["org"], bu=beta["developer"], p=alpha["project"])
            assert "row-level security" in message


class TestCrossTenantAsTheLoginRole:
    def test_no_table_shows_another_organization(self, tenants_db):
        _, alpha, beta = tenants_db
        with session_scope(alpha["org"]) as s:
            assert s.execute(text("SELECT session_user")).scalar() == "mlops_login"
            for table, sql in TENANT_TABLES.items():
                orgs = {org for _, org in s.execute(text(sql))}
                assert orgs <= {alpha["org"]}, table
                assert orgs, f"{table}: alpha sees none of its own rows"

    def test_an_unscoped_transaction_sees_nothing(self, tenants_db):
        with session_scope(None) as s:
            for table in TENANT_TABLES:
                assert s.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table

    def test_e_mails_are_unique_case_insensitively(self, tenants_db):
        url, _, _ = tenants_db
        with pytest.raises(DBAPIError, match="uq_users__lower_email"), system_session() as s:
            s.execute(text("INSERT INTO users (email, first_name, last_name) VALUES ('ADMIN@alpha.example', 'A', 'B')"))
        assert owner_rows(url, "SELECT count(*) FROM users WHERE lower(email) = 'admin@alpha.example'")[0][0] == 1
