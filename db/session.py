"""Engines, `session_scope()` and the tenant scope every application transaction runs under.

Application sessions run as the non-superuser role `mlops_app` with the acting organization in
`app.organization_id`, both set with `set_config(..., is_local => true)` at the start of every
transaction: row-level security then binds them, and no session state outlives a transaction, so the
application works behind PgBouncer in transaction-pooling mode. `system_session()` runs as the
connecting (owner) role and is kept for migrations, seeding, authentication and cross-organization
scheduling.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, SessionTransaction

from core.errors import TransientError
from db.url import database_url

APP_ROLE = "mlops_app"
# No application statement may hang a task forever (a lock held by a stuck session, a runaway query).
STATEMENT_TIMEOUT = os.environ.get("MLOPS_STATEMENT_TIMEOUT", "120s")
# SQLSTATE classes worth retrying: connection exceptions, shutdown, serialization failure, deadlock.
TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "53300")

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL (`DATABASE_URL` or the embedded default when `url` is None)."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(
                url,
                pool_pre_ping=True,  # survive a database restart between transactions
                pool_size=10,
                max_overflow=20,
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


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether a DBAPI error is worth retrying (connection lost, serialization failure, deadlock)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(TRANSIENT_SQLSTATES)
    return isinstance(exc, OperationalError)


def _scope_transaction(organization_id: uuid.UUID | None):
    org = str(organization_id) if organization_id else ""

    def after_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
        connection.execute(
            text(
                "SELECT set_config('role', :role, true), set_config('app.organization_id', :org, true), "
                "set_config('statement_timeout', :timeout, true)"
            ),
            {"role": APP_ROLE, "org": org, "timeout": STATEMENT_TIMEOUT},
        )

    return after_begin


@contextmanager
def _scope(session: Session) -> Iterator[Session]:
    try:
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        if is_transient_db_error(exc):
            raise TransientError(f"database unavailable or busy, retry: {exc.orig.__class__.__name__}") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def session_scope(organization_id: uuid.UUID | None = None, *, url: str | None = None) -> Iterator[Session]:
    """A transaction as the application role, scoped to `organization_id` (None sees no tenant rows).

    Commits on success, rolls back on error, always closes; connection failures, serialization
    failures and deadlocks become `TransientError`.
    """
    session = Session(get_engine(url), expire_on_commit=False)
    event.listen(session, "after_begin", _scope_transaction(organization_id))
    with _scope(session) as scoped:
        yield scoped


@contextmanager
def system_session(*, url: str | None = None) -> Iterator[Session]:
    """A transaction as the connecting role (bypasses RLS): migrations, seed, auth, scheduling."""
    with _scope(Session(get_engine(url), expire_on_commit=False)) as scoped:
        yield scoped
