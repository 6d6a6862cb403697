"""The migrations: up, down to base and up again, and models and migrations agreeing."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, pool, text

from db import migrate


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_spec_table(empty_db: str) -> None:
    migrate.upgrade(url=empty_db)
    assert migrate.current_revision(url=empty_db) == migrate.head_revision()
    assert {
        "organizations",
        "users",
        "organization_memberships",
        "projects",
        "project_members",
        "models",
        "model_versions",
        "experiments",
        "experiment_runs",
        "run_metrics",
        "deployments",
        "deployment_history",
        "model_monitoring",
        "data_drift_reports",
        "alerts",
        "api_keys",
        "audit_logs",
        "notification_channels",
        "notification_rules",
    } <= _tables(empty_db)


def test_alembic_check_finds_no_difference(template_url: str) -> None:
    migrate.check(url=template_url)


def test_down_to_base_and_up_again(empty_db: str) -> None:
    migrate.upgrade(url=empty_db)
    migrate.downgrade("base", url=empty_db)
    assert _tables(empty_db) == {"alembic_version"}
    migrate.upgrade(url=empty_db)
    assert migrate.current_revision(url=empty_db) == migrate.head_revision()


def test_updated_at_trigger_on_every_table_that_has_the_column(template_url: str) -> None:
    engine = create_engine(template_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        missing = (
            conn.execute(
                text(
                    """
                SELECT c.table_name FROM information_schema.columns c
                WHERE c.table_schema = 'public' AND c.column_name = 'updated_at'
                  AND NOT EXISTS (
                    SELECT 1 FROM information_schema.triggers t
                    WHERE t.event_object_table = c.table_name AND t.event_manipulation = 'UPDATE'
                      AND t.action_statement LIKE '%mlops_set_updated_at%')
                """
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert missing == []
