"""The schema enforces the spec by itself: CHECKs, UNIQUEs, cascades, RESTRICT, the trigger, full-text search."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import CheckConstraint, UniqueConstraint, create_engine, pool, text
from sqlalchemy.exc import IntegrityError

import db.models  # noqa: F401
from db import migrate
from db.base import Base
from tests.factories import TENANT_TABLES, make_tenant


@pytest.fixture
def two(conn):
    return make_tenant(conn, "alpha"), make_tenant(conn, "beta")


def _violates(conn, sql: str, params: dict, kind: str) -> None:
    savepoint = conn.begin_nested()
    with pytest.raises(IntegrityError) as caught:
        conn.execute(text(sql), params)
    savepoint.rollback()
    assert kind in type(caught.value.orig).__name__, caught.value


CHECKS = [
    (table.name, constraint.name, re.sub(r"^ck_\w+?__", "", str(constraint.name)))
    for table in Base.metadata.sorted_tables
    for constraint in table.constraints
    if isinstance(constraint, CheckConstraint)
]
UNIQUES = [
    (table.name, tuple(c.name for c in constraint.columns))
    for table in Base.metadata.sorted_tables
    for constraint in table.constraints
    if isinstance(constraint, UniqueConstraint)
]


class TestChecks:
    @pytest.mark.parametrize(("table", "name", "column"), CHECKS, ids=[c[1] for c in CHECKS])
    def test_check_rejects_a_value_outside_its_list(self, conn, two, table, name, column):
        row = conn.execute(text(f"SELECT id FROM {table} LIMIT 1")).scalar_one()
        _violates(
            conn, f"UPDATE {table} SET {column} = 'not-a-valid-value' WHERE id = :id", {"id": row}, "CheckViolation"
        )

    def test_every_spec_check_is_exercised(self):
        names = {name for _, name, _ in CHECKS}
        assert "ck_organizations__subscription_plan" in names and "ck_alerts__severity" in names
        assert len(names) >= 20


class TestUniques:
    @pytest.mark.parametrize(("table", "columns"), UNIQUES, ids=[f"{t}({','.join(c)})" for t, c in UNIQUES])
    def test_unique_rejects_a_duplicate(self, conn, two, table, columns):
        if "dedup_key" in columns:
            conn.execute(text("UPDATE notification_events SET dedup_key = 'same'"))
        first, second = conn.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 2")).scalars()
        assignments = ", ".join(f"{c} = src.{c}" for c in columns)
        _violates(
            conn,
            f"UPDATE {table} t SET {assignments} FROM {table} src WHERE src.id = :first AND t.id = :second",
            {"first": first, "second": second},
            "UniqueViolation",
        )

    def test_one_production_version_per_model(self, conn, two):
        a, _ = two
        _violates(
            conn, "UPDATE model_versions SET stage = 'production' WHERE id = :v", {"v": a["v110"]}, "UniqueViolation"
        )


class TestForeignKeys:
    def _count(self, conn, table: str, column: str, value) -> int:
        return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": value}).scalar_one()

    def test_version_in_use_by_a_deployment_cannot_be_deleted(self, conn, two):
        a, _ = two
        _violates(conn, "DELETE FROM model_versions WHERE id = :v", {"v": a["v100"]}, "RestrictViolation")

    def test_deleting_a_deployment_cascades_to_its_history_monitoring_drift_and_alerts(self, conn, two):
        a, b = two
        conn.execute(text("DELETE FROM deployments WHERE id = :d"), {"d": a["deployment_production"]})
        for table in ("deployment_history", "model_monitoring", "alerts"):
            assert self._count(conn, table, "deployment_id", a["deployment_production"]) == 0
        assert self._count(conn, "model_monitoring", "deployment_id", b["deployment_production"]) == 1
        conn.execute(text("DELETE FROM deployments WHERE id = :d"), {"d": a["deployment_staging"]})
        assert self._count(conn, "data_drift_reports", "deployment_id", a["deployment_staging"]) == 0

    def test_deleting_an_experiment_cascades_to_runs_and_their_metrics(self, conn, two):
        a, _ = two
        conn.execute(text("DELETE FROM experiments WHERE id = :e"), {"e": a["experiment"]})
        assert self._count(conn, "experiment_runs", "id", a["run"]) == 0
        assert self._count(conn, "run_metrics", "id", a["run_metric"]) == 0

    def test_deleting_a_model_keeps_experiments_and_clears_their_model(self, conn, two):
        a, _ = two
        conn.execute(text("DELETE FROM deployments WHERE organization_id = :o"), {"o": a["org"]})
        conn.execute(
            text("DELETE FROM deployment_history WHERE model_version_id IN (:a, :b, :c)"),
            {"a": a["v100"], "b": a["v110"], "c": a["v120"]},
        )
        conn.execute(text("DELETE FROM models WHERE id = :m"), {"m": a["model"]})
        assert self._count(conn, "model_versions", "model_id", a["model"]) == 0
        assert (
            conn.execute(text("SELECT model_id FROM experiments WHERE id = :e"), {"e": a["experiment"]}).scalar()
            is None
        )

    def test_deleting_a_user_keeps_the_audit_trail_without_the_user(self, conn, two):
        a, _ = two
        conn.execute(text("UPDATE audit_logs SET user_id = :u WHERE id = :id"), {"u": a["viewer"], "id": a["audit"]})
        conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": a["viewer"]})
        assert conn.execute(text("SELECT user_id FROM audit_logs WHERE id = :id"), {"id": a["audit"]}).scalar() is None
        assert self._count(conn, "organization_memberships", "user_id", a["viewer"]) == 0

    def test_a_user_who_created_projects_cannot_be_deleted(self, conn, two):
        a, _ = two
        _violates(conn, "DELETE FROM users WHERE id = :u", {"u": a["admin"]}, "ForeignKeyViolation")

    def test_deleting_a_channel_cascades_to_its_rules(self, conn, two):
        a, _ = two
        conn.execute(text("DELETE FROM notification_channels WHERE id = :c"), {"c": a["channel"]})
        assert self._count(conn, "notification_rules", "id", a["rule"]) == 0


class TestUpdatedAtTrigger:
    def test_update_sets_updated_at(self, conn, two):
        a, _ = two
        conn.execute(text("UPDATE models SET updated_at = '2020-01-01' WHERE id = :m"), {"m": a["model"]})
        conn.execute(text("UPDATE models SET description = 'retrained' WHERE id = :m"), {"m": a["model"]})
        stamp = conn.execute(text("SELECT updated_at > '2025-01-01' FROM models WHERE id = :m"), {"m": a["model"]})
        assert stamp.scalar() is True

    def test_explicit_updated_at_is_kept(self, conn, two):
        a, _ = two
        conn.execute(
            text("UPDATE alerts SET updated_at = '2020-01-01', status = 'resolved' WHERE id = :id"), {"id": a["alert"]}
        )
        value = conn.execute(text("SELECT updated_at::date::text FROM alerts WHERE id = :id"), {"id": a["alert"]})
        assert value.scalar() == "2020-01-01"


class TestFullTextSearch:
    def test_search_finds_models_by_description_words(self, conn, two):
        found = conn.execute(
            text(
                "SELECT count(*) FROM models WHERE to_tsvector('english', name || ' ' || COALESCE(description, '')) "
                "@@ plainto_tsquery('english', 'boosted scorers')"
            )
        ).scalar()
        assert found == 2

    def test_search_uses_the_gin_index(self, conn, two):
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                text(
                    "EXPLAIN SELECT id FROM experiments WHERE to_tsvector('english', name || ' ' || "
                    "COALESCE(description, '')) @@ plainto_tsquery('english', 'learning')"
                )
            ).scalars()
        )
        assert "idx_experiments_search" in plan


class TestMigrationsWithData:
    def test_down_and_up_with_data_present(self, fresh_db):
        engine = create_engine(fresh_db, poolclass=pool.NullPool)
        with engine.begin() as connection:
            tenant = make_tenant(connection, "kept")
        migrate.downgrade("0001", url=fresh_db)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT slug FROM organizations")).scalars().all() == ["kept"]
        migrate.upgrade(url=fresh_db)
        with engine.connect() as connection:
            versions = connection.execute(
                text(
                    "SELECT count(*) FROM model_versions v JOIN models m ON m.id = v.model_id "
                    "WHERE m.organization_id = :o"
                ),
                {"o": tenant["org"]},
            ).scalar()
            assert versions == 3
        migrate.downgrade("base", url=fresh_db)
        migrate.upgrade(url=fresh_db)
        assert migrate.current_revision(url=fresh_db) == migrate.head_revision()
        engine.dispose()


class TestOrganizationDeletion:
    def test_deleting_an_organization_cascades_through_every_tenant_table(self, conn, two):
        a, b = two
        before = _rows_by_org(conn)
        conn.execute(text("DELETE FROM organizations WHERE id = :o"), {"o": a["org"]})
        after = _rows_by_org(conn)
        for table in TENANT_TABLES:
            if table == "users":  # users are global; only their membership goes
                continue
            assert after[table].get(a["org"], 0) == 0, table
            assert after[table].get(b["org"], 0) == before[table][b["org"]], table


def _rows_by_org(conn) -> dict[str, dict]:
    counts: dict[str, dict] = {}
    for table, sql in TENANT_TABLES.items():
        rows = conn.execute(text(f"SELECT org, count(*) FROM ({sql}) t GROUP BY org")).all()
        counts[table] = dict(rows)
    return counts
