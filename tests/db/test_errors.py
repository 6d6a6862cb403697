"""db.errors.translate, where sessions end: every database error a user can cause becomes one domain error with
one message, the same from the CLI, a flow run and a deployment run; a bug stays a bug."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import IntegrityError

from core.errors import Conflict, InvalidInput, TransientError
from db.migrate import current_revision
from db.session import dispose_engines, pool_size, session_scope, system_session


class TestConstraintsAndLocks:
    def test_a_lock_not_granted_in_time_is_a_conflict_naming_what_was_changed(self, tenants_db):
        url, alpha, _ = tenants_db
        holder = create_engine(url, poolclass=pool.NullPool)
        with holder.connect() as held:
            held.execute(text("SELECT id FROM models WHERE id = :m FOR UPDATE"), {"m": alpha["model"]})
            with (
                pytest.raises(Conflict, match=r"^another change to model 'Fraud Model' is in progress; retry$"),
                session_scope(alpha["org"], what="model 'Fraud Model'") as s,
            ):
                s.execute(text("SET LOCAL lock_timeout = '100ms'"))
                s.execute(text("SELECT id FROM models WHERE id = :m FOR UPDATE"), {"m": alpha["model"]})
            held.rollback()
        holder.dispose()

    def test_a_lock_timeout_in_a_maintenance_session_is_a_conflict_too(self, tenants_db):
        url, alpha, _ = tenants_db
        holder = create_engine(url, poolclass=pool.NullPool)
        with holder.connect() as held:
            held.execute(text("SELECT id FROM organizations WHERE id = :o FOR UPDATE"), {"o": alpha["org"]})
            with pytest.raises(Conflict, match="the same rows"), system_session() as s:
                s.execute(text("SET LOCAL lock_timeout = '100ms'"))
                s.execute(text("SELECT id FROM organizations WHERE id = :o FOR UPDATE"), {"o": alpha["org"]})
            held.rollback()
        holder.dispose()

    def test_the_constraint_table_names_the_error_and_nothing_is_written(self, tenants_db):
        url, alpha, _ = tenants_db
        # 1.0.0 is in production already: a second production version violates the partial unique index
        with (
            pytest.raises(Conflict, match="^another version of model 'Fraud Model' reached production concurrently"),
            session_scope(alpha["org"], what="model 'Fraud Model'") as s,
        ):
            s.execute(text("UPDATE model_versions SET description = 'touched' WHERE id = :v"), {"v": alpha["v110"]})
            s.execute(text("UPDATE model_versions SET stage = 'production' WHERE id = :v"), {"v": alpha["v110"]})
        assert _owner_scalar(url, "SELECT count(*) FROM model_versions WHERE description = 'touched'") == 0

    def test_an_unexpected_constraint_violation_stays_a_bug_with_its_traceback(self, tenants_db):
        _, alpha, _ = tenants_db
        with pytest.raises(IntegrityError), session_scope(alpha["org"]) as s:
            # the code validates stages before writing: a CHECK violation is a bug, not something to translate
            s.execute(text("UPDATE model_versions SET stage = 'heaven' WHERE id = :v"), {"v": alpha["v110"]})


class TestBadData:
    def test_a_value_the_schema_cannot_hold_is_invalid_input_naming_the_kind_never_the_value(self, tenants_db):
        _, alpha, _ = tenants_db
        with pytest.raises(InvalidInput) as refused, session_scope(alpha["org"]) as s:
            s.execute(text("SELECT CAST(:v AS integer)"), {"v": "secret-looking-value"})
        assert str(refused.value) == ("the database refused a value: invalid text representation (SQLSTATE 22P02)")
        assert refused.value.exit_code == 2


class TestUnavailable:
    def test_a_pool_with_no_connection_free_in_time_is_transient(self, tenants_db, monkeypatch):
        _, alpha, _ = tenants_db
        monkeypatch.setenv("MLOPS_TASK_CONCURRENCY", "1")
        monkeypatch.setenv("MLOPS_POOL_TIMEOUT", "1")
        dispose_engines()
        try:
            assert pool_size() == 2
            with ExitStack() as held:
                for _ in range(2 * pool_size()):  # the pool and its overflow, every connection checked out
                    s = held.enter_context(session_scope(alpha["org"]))
                    s.execute(text("SELECT 1"))
                with pytest.raises(TransientError, match="no pooled connection"), session_scope(alpha["org"]) as s:
                    s.execute(text("SELECT 1"))
        finally:
            dispose_engines()

    def test_an_unreachable_database_is_transient_for_migrations_too(self, monkeypatch):
        nowhere = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
        with pytest.raises(TransientError, match="database unavailable"):
            current_revision(url=nowhere)

    def test_malformed_pool_settings_are_one_line(self, monkeypatch):
        monkeypatch.setenv("MLOPS_TASK_CONCURRENCY", "lots")
        with pytest.raises(InvalidInput, match="MLOPS_TASK_CONCURRENCY must be a whole number from 1 to 64"):
            pool_size()


def test_a_flow_reports_a_database_error_the_same_way_orchestrated_and_direct(tenants_db, flow_runner):
    """Before, a deployment run ended on the raw DataError (an unexpected-exception traceback) where the CLI, by
    sniffing sys.modules, exited 2; now both get the InvalidInput that session_scope raises."""
    from prefect import task

    from flows.runtime import call, control_flow, run_name
    from tasks.shared.options import IO_TASK

    _, alpha, _ = tenants_db

    @task(name="cast-a-value", **IO_TASK)
    def cast_a_value(value: str) -> int:
        with session_scope(alpha["org"]) as s:
            return s.scalar(text("SELECT CAST(:v AS integer)"), {"v": value})

    @control_flow(name="cast-probe", flow_run_name=run_name("cast-probe"))
    def cast_probe(value: str) -> int:
        return call(cast_a_value, value)

    assert flow_runner(cast_probe, value="42") == 42
    with pytest.raises(InvalidInput) as refused:
        flow_runner(cast_probe, value="forty-two")
    assert str(refused.value) == "the database refused a value: invalid text representation (SQLSTATE 22P02)"
    if flow_runner.orchestrated:
        state = cast_probe(value="forty-two", return_state=True)
        assert state.is_failed() and state.message == f"InvalidInput: {refused.value}"


def _owner_scalar(url: str, sql: str):
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar_one()
    engine.dispose()
    return value
