"""Audit rows and outbox events are written in the caller's transaction: they exist iff the change commits."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool, select, text, update

from db.models import Model
from db.session import session_scope
from services.audit import client_context, record_audit
from services.auth import resolve_principal, resolve_system
from services.outbox import emit_event


def count(url: str, sql: str, **params) -> int:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        value = conn.execute(text(sql), params).scalar_one()
    engine.dispose()
    return value


class Boom(Exception):
    pass


class TestTransactionalWrites:
    def test_change_audit_and_event_commit_together(self, tenants_db):
        url, alpha, _ = tenants_db
        principal = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        with (
            client_context(user_agent="tests/1.0", ip_address="10.1.2.3"),
            session_scope(principal.organization_id) as s,
        ):
            s.execute(update(Model).where(Model.id == alpha["model"]).values(description="retrained"))
            record_audit(
                s, principal=principal, action="model.update", resource_type="model", resource_id=alpha["model"]
            )
            emit_event(
                s,
                organization_id=principal.organization_id,
                trigger_type="model_update",
                event_type="model.updated",
                payload={"model": "Fraud Model"},
                dedup_key="model-updated-1",
            )
        assert count(url, "SELECT count(*) FROM models WHERE description = 'retrained'") == 1
        audit = create_engine(url, poolclass=pool.NullPool)
        with audit.connect() as conn:
            row = conn.execute(
                text("SELECT user_id, user_agent, host(ip_address) AS ip FROM audit_logs WHERE action = 'model.update'")
            ).one()
        audit.dispose()
        assert row.user_id == alpha["admin"] and row.user_agent == "tests/1.0" and row.ip == "10.1.2.3"
        assert count(url, "SELECT count(*) FROM notification_events WHERE dedup_key = 'model-updated-1'") == 1

    def test_rolled_back_change_leaves_neither_audit_nor_event(self, tenants_db):
        url, alpha, _ = tenants_db
        principal = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        with pytest.raises(Boom), session_scope(principal.organization_id) as s:
            s.execute(update(Model).where(Model.id == alpha["model"]).values(description="half"))
            record_audit(s, principal=principal, action="model.update", resource_type="model")
            emit_event(
                s,
                organization_id=principal.organization_id,
                trigger_type="model_update",
                event_type="model.updated",
                payload={},
            )
            raise Boom
        assert count(url, "SELECT count(*) FROM models WHERE description = 'half'") == 0
        assert count(url, "SELECT count(*) FROM audit_logs WHERE action = 'model.update'") == 0
        assert count(url, "SELECT count(*) FROM notification_events WHERE event_type = 'model.updated'") == 0

    def test_same_dedup_key_emits_once(self, tenants_db):
        url, alpha, _ = tenants_db
        for _ in range(2):
            with session_scope(alpha["org"]) as s:
                emit_event(
                    s,
                    organization_id=alpha["org"],
                    trigger_type="alert",
                    event_type="drift.detected",
                    payload={},
                    severity="high",
                    dedup_key="drift:window-1",
                )
        assert count(url, "SELECT count(*) FROM notification_events WHERE dedup_key = 'drift:window-1'") == 1

    def test_system_actions_are_audited_without_a_user(self, tenants_db):
        url, alpha, _ = tenants_db
        system = resolve_system("alpha")
        with session_scope(system.organization_id) as s:
            record_audit(s, principal=system, action="retention.run", resource_type="organization")
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT user_id, details FROM audit_logs WHERE action = 'retention.run'")).one()
        engine.dispose()
        assert row.user_id is None and row.details["actor"] == "system"

    def test_event_for_another_organizations_deployment_is_refused(self, tenants_db):
        url, alpha, beta = tenants_db
        from sqlalchemy.exc import ProgrammingError

        with pytest.raises(ProgrammingError, match="row-level security"), session_scope(alpha["org"]) as s:
            emit_event(
                s,
                organization_id=alpha["org"],
                trigger_type="alert",
                event_type="x",
                payload={},
                deployment_id=beta["deployment_production"],
            )
        assert count(url, "SELECT count(*) FROM notification_events WHERE event_type = 'x'") == 0


class TestSessions:
    def test_session_scope_runs_as_the_application_role_scoped_to_the_organization(self, tenants_db):
        _, alpha, _ = tenants_db
        with session_scope(alpha["org"]) as s:
            assert s.scalar(text("SELECT current_user")) == "mlops_app"
            assert {m.organization_id for m in s.scalars(select(Model))} == {alpha["org"]}
            s.commit()  # the next transaction of the same session is scoped again
            assert s.scalar(text("SELECT current_setting('app.organization_id')")) == str(alpha["org"])

    def test_connection_failure_is_a_transient_error(self, monkeypatch):
        from core.errors import TransientError
        from db.session import dispose_engines

        monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
        dispose_engines()
        with pytest.raises(TransientError, match="database unavailable"), session_scope() as s:
            s.execute(text("SELECT 1"))
