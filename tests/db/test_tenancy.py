"""Row-level security, proved with raw SQL: a tenant sees and writes only its own rows, in every table."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from tests.factories import TENANT_TABLES, act_as, act_as_owner, make_tenant


@pytest.fixture
def tenants(conn):
    a = make_tenant(conn, "alpha")
    b = make_tenant(conn, "beta")
    owners = {}
    for table, sql in TENANT_TABLES.items():
        owners[table] = {row.id: row.org for row in conn.execute(text(sql))}
    return a, b, owners


def _visible(conn, table: str) -> set:
    return set(conn.execute(text(f"SELECT id FROM {table}")).scalars())


class TestIsolation:
    def test_every_tenant_table_has_row_level_security(self, conn):
        unprotected = (
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY(:tables) "
                    "AND NOT c.relrowsecurity"
                ),
                {"tables": list(TENANT_TABLES)},
            )
            .scalars()
            .all()
        )
        assert unprotected == []

    def test_every_table_with_tenant_data_is_covered_by_these_tests(self, conn):
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
            ).scalars()
        )
        assert tables == set(TENANT_TABLES)

    @pytest.mark.parametrize("table", list(TENANT_TABLES))
    def test_scoped_session_sees_exactly_its_own_rows(self, conn, tenants, table):
        a, b, owners = tenants
        for tenant in (a, b):
            act_as(conn, tenant["org"])
            seen = _visible(conn, table)
            act_as_owner(conn)
            expected = {row for row, org in owners[table].items() if org == tenant["org"]}
            assert expected, f"the factory made no {table} row for {tenant.slug}"
            assert seen == expected

    @pytest.mark.parametrize("table", list(TENANT_TABLES))
    def test_unscoped_application_session_sees_nothing(self, conn, tenants, table):
        act_as(conn, None)
        assert _visible(conn, table) == set()

    def test_superuser_bypasses_policies(self, conn, tenants):
        a, b, _ = tenants
        assert {a["org"], b["org"]} <= _visible(conn, "organizations")


class TestWrites:
    def _fails(self, conn, sql: str, **params) -> None:
        savepoint = conn.begin_nested()
        with pytest.raises((ProgrammingError, DBAPIError)) as caught:
            conn.execute(text(sql), params)
        savepoint.rollback()
        assert "row-level security" in str(caught.value) or "permission denied" in str(caught.value)

    def test_cannot_insert_a_row_of_another_organization(self, conn, tenants):
        a, b, _ = tenants
        act_as(conn, a["org"])
        self._fails(
            conn,
            "INSERT INTO alerts (organization_id, alert_type, severity, title, message) "
            "VALUES (:o, 'custom', 'low', 'x', 'y')",
            o=b["org"],
        )
        self._fails(
            conn,
            "INSERT INTO audit_logs (organization_id, action, resource_type) VALUES (:o, 'x', 'y')",
            o=b["org"],
        )

    def test_cannot_point_own_row_at_another_organizations_parent(self, conn, tenants):
        a, b, _ = tenants
        act_as(conn, a["org"])
        self._fails(
            conn,
            "INSERT INTO models (organization_id, project_id, name, model_type, framework, created_by) "
            "VALUES (:o, :p, 'smuggled', 'classification', 'xgboost', :u)",
            o=a["org"],
            p=b["project"],
            u=a["admin"],
        )
        self._fails(
            conn,
            "INSERT INTO model_versions (model_id, version, model_file_path, created_by) VALUES (:m, '9.9.9', 'x', :u)",
            m=b["model"],
            u=a["admin"],
        )
        self._fails(
            conn,
            "INSERT INTO model_monitoring (deployment_id, metric_name, value) VALUES (:d, 'x', 1)",
            d=b["deployment_production"],
        )
        self._fails(
            conn,
            "INSERT INTO deployments (organization_id, project_id, model_version_id, name, environment, created_by) "
            "VALUES (:o, :p, :v, 'smuggled', 'staging', :u)",
            o=a["org"],
            p=a["project"],
            v=b["v100"],
            u=a["admin"],
        )

    def test_updates_and_deletes_do_not_reach_another_organization(self, conn, tenants):
        a, b, _ = tenants
        act_as(conn, a["org"])
        assert (
            conn.execute(text("UPDATE models SET description = 'pwned' WHERE id = :m"), {"m": b["model"]}).rowcount == 0
        )
        assert conn.execute(text("DELETE FROM model_monitoring WHERE id = :m"), {"m": b["monitoring"]}).rowcount == 0
        assert conn.execute(text("UPDATE organizations SET name = 'x' WHERE id = :o"), {"o": b["org"]}).rowcount == 0
        act_as_owner(conn)
        assert conn.execute(text("SELECT description FROM models WHERE id = :m"), {"m": b["model"]}).scalar() != "pwned"

    def test_cannot_move_own_row_into_another_organization(self, conn, tenants):
        a, b, _ = tenants
        act_as(conn, a["org"])
        self._fails(conn, "UPDATE alerts SET organization_id = :b WHERE id = :id", b=b["org"], id=a["alert"])

    def test_scoped_session_writes_its_own_rows(self, conn, tenants):
        a, _, _ = tenants
        act_as(conn, a["org"])
        conn.execute(
            text("INSERT INTO model_monitoring (deployment_id, metric_name, value) VALUES (:d, 'rps', 10)"),
            {"d": a["deployment_production"]},
        )
        assert conn.execute(text("SELECT count(*) FROM model_monitoring WHERE metric_name = 'rps'")).scalar() == 1

    def test_monitoring_organization_is_taken_from_the_deployment_whatever_the_writer_sends(self, conn, tenants):
        a, b, _ = tenants
        row = conn.execute(
            text(
                "INSERT INTO model_monitoring (deployment_id, organization_id, metric_name, value) "
                "VALUES (:d, :spoofed, 'rps', 1) RETURNING organization_id"
            ),
            {"d": a["deployment_production"], "spoofed": b["org"]},
        ).scalar_one()
        assert row == a["org"]
        conn.execute(
            text("UPDATE model_monitoring SET organization_id = :b WHERE id = :m"),
            {"b": b["org"], "m": a["monitoring"]},
        )
        assert (
            conn.execute(
                text("SELECT organization_id FROM model_monitoring WHERE id = :m"), {"m": a["monitoring"]}
            ).scalar()
            == a["org"]
        )

    def test_audit_log_is_append_only_for_the_application(self, conn, tenants):
        a, _, _ = tenants
        act_as(conn, a["org"])
        self._fails(conn, "DELETE FROM audit_logs WHERE id = :id", id=a["audit"])
        self._fails(conn, "UPDATE audit_logs SET action = 'x' WHERE id = :id", id=a["audit"])

    def test_scope_is_transaction_local(self, fresh_db):
        """The application's own `session_scope`, then the SAME pooled connection outside any scope: the role and
        organization set in one transaction must be gone (a pooled connection handed to another organization's
        task must not carry them). Fails if the scope were set for the session (`set_config(..., false)`)."""
        import uuid

        from db.session import get_engine, session_scope

        org = uuid.uuid4()
        with session_scope(org) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
            assert session.execute(text("SELECT current_user")).scalar() == "mlops_app"
            assert session.execute(text("SELECT mlops_current_org()")).scalar() == org
        with get_engine().connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() == pid  # the same connection
            assert connection.execute(text("SELECT current_setting('app.organization_id', true)")).scalar() in (
                None,
                "",
            )
            assert connection.execute(text("SELECT current_user")).scalar() == "mlops_login"
