"""Alembic environment: the owner's MLOPS_MIGRATION_DATABASE_URL (see db.url), one advisory lock per run."""

from __future__ import annotations

import time

from alembic import context
from sqlalchemy import create_engine, pool, text

import db.models  # noqa: F401  (registers every table on Base.metadata)
from db.base import Base
from db.url import migration_database_url

MIGRATION_LOCK_ID = 7_263_001  # pg_advisory_lock key: two `upgrade` runs never interleave

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or migration_database_url()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_server_default=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    # A session lock, taken and committed before Alembic reads the current revision: a transaction lock
    # would be released by the first revision's autocommit_block() (CREATE INDEX CONCURRENTLY), letting a
    # second `upgrade` that waited on it re-run the revisions the first one is still applying.
    # Waiting is a poll, committing between tries: a backend blocked in pg_advisory_lock() holds a snapshot,
    # and the holder's CREATE INDEX CONCURRENTLY waits for old snapshots, which would be a deadlock.
    while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_ID}).scalar():
        connection.commit()
        time.sleep(0.2)
    connection.commit()
    try:
        context.configure(connection=connection, target_metadata=target_metadata, compare_server_default=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_ID})
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
