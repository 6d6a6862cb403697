"""Engines, `session_scope()` and the tenant scope every application transaction runs under.

Two sessions, two roles (see `db.url` for the URLs and revision 0012 for the grants):

- `session_scope(org_id)`: connects as the login role `mlops_login` (LOGIN NOINHERIT, member of `mlops_app`
  only) and sets `role = mlops_app` and `app.organization_id` with `set_config(..., is_local => true)` at the
  start of every transaction: row-level security then binds them, and no session state outlives a
  transaction, so the application works behind PgBouncer in transaction-pooling mode. `RESET ROLE`, `SET ROLE`
  to anything else or `SET SESSION AUTHORIZATION` inside it land on `mlops_login`, which has no table
  privilege at all, or are refused. What a `set_config('app.organization_id', ...)` injected later in the
  same transaction can do: switch the tenant it acts for, still as `mlops_app` (per-table grants,
  append-only audit, no role change); the database cannot tell the application's own call from an injected
  one, which is why every SQL statement stays parameterised.
- `system_session()`: connects as the MAINTENANCE role `mlops_maintenance` (BYPASSRLS, bounded by its own
  per-table grants: `MAINTENANCE_GRANTS` in revision 0012). Only for work that must cross organizations or
  precede knowing the organization: the schedulers' organization listing, authentication lookups, platform
  administration of organizations/users/memberships, re-encrypting every channel, retention. Say why
  wherever you use it. It cannot run DDL, update audit rows, or read tables it was not granted; a table
  your cross-organization code needs is added to the grants in your migration.

Retention: the maintenance role has `DELETE` on `audit_logs` (nobody has `UPDATE`), so retention's archive-
then-delete runs in `system_session()`; there is no owner-level session for application code. Migrations
alone run as the owner (`MLOPS_MIGRATION_DATABASE_URL`, through `db.migrate`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from core.settings import pool_timeout_seconds, statement_timeout, task_concurrency
from db.errors import translate
from db.url import database_url, maintenance_database_url

APP_ROLE = "mlops_app"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def pool_size() -> int:
    """Connections each engine keeps: one per task a flow run runs at once (`MLOPS_TASK_CONCURRENCY`, the one
    setting that bounds fan-out) plus one for the flow's own calls. As many again may open for a moment beyond
    it (a refusal audited in its own transaction while a task's is open); past that a session waits up to
    `MLOPS_POOL_TIMEOUT` and then fails with a TransientError, which the task retries."""
    return task_concurrency() + 1


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL (`DATABASE_URL` or the embedded default when `url` is None), its pool sized by
    `pool_size()`."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            size = pool_size()
            engine = create_engine(
                url,
                pool_pre_ping=True,  # survive a database restart between transactions
                pool_size=size,
                max_overflow=size,
                pool_timeout=pool_timeout_seconds(),
                # no server-side prepared statements: they would outlive the transaction under PgBouncer
                connect_args={"prepare_threshold": None, "application_name": "mlops"},
            )
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, forked processes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _scope_transaction(organization_id: uuid.UUID | None):
    org = str(organization_id) if organization_id else ""
    # no application statement may hang a task forever (a lock held by a stuck session, a runaway query)
    timeout = statement_timeout()

    def after_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
        connection.execute(
            text(
                "SELECT set_config('role', :role, true), set_config('app.organization_id', :org, true), "
                "set_config('statement_timeout', :timeout, true)"
            ),
            {"role": APP_ROLE, "org": org, "timeout": timeout},
        )

    return after_begin


@contextmanager
def _scope(session: Session, what: str | None) -> Iterator[Session]:
    """Commit, or roll back and raise the domain error a database error means (`db.errors.translate`)."""
    try:
        yield session
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        error = translate(exc, what=what)
        if error is None:
            raise
        raise error from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def session_scope(
    organization_id: uuid.UUID | None = None, *, url: str | None = None, what: str | None = None
) -> Iterator[Session]:
    """A transaction as the application role, scoped to `organization_id` (None sees no tenant rows).

    Commits on success, rolls back on error, always closes. Database errors leave it as domain errors
    (`db.errors.translate`; `what` names what the transaction changes, for their messages): a lock not granted
    is a `Conflict`, connection loss, serialization failures, deadlocks and a full pool a `TransientError`.
    """
    session = Session(get_engine(url), expire_on_commit=False)
    event.listen(session, "after_begin", _scope_transaction(organization_id))
    with _scope(session, what) as scoped:
        yield scoped


@contextmanager
def system_session(*, url: str | None = None, what: str | None = None) -> Iterator[Session]:
    """A transaction as the maintenance role (bypasses RLS, limited by its grants): organization listing for
    schedulers, authentication lookups, platform administration, retention. `url` overrides
    `MLOPS_MAINTENANCE_DATABASE_URL`; errors are translated as in `session_scope`."""
    session = Session(get_engine(url or maintenance_database_url()), expire_on_commit=False)
    event.listen(session, "after_begin", _timeout_only(statement_timeout()))
    with _scope(session, what) as scoped:
        yield scoped


def _timeout_only(timeout: str):
    def after_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
        connection.execute(text("SELECT set_config('statement_timeout', :timeout, true)"), {"timeout": timeout})

    return after_begin
