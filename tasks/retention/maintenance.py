"""Retention's database access: the maintenance-role transaction it works in, and the lock that keeps two runs
(or a run and a restore) from overlapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import Conflict
from db.errors import translated
from db.queries import retention as q
from db.session import get_engine, system_session


@contextmanager
def retention_owner_session() -> Iterator[Any]:
    """A transaction as the maintenance role `mlops_maintenance`, for retention only.

    Retention bypasses row-level security ON PURPOSE: it works across organizations on behalf of none (RLS,
    which admits one acting organization, would hide what it must see), and it deletes audit rows, which the
    application role `mlops_app` can never update or delete so that no request, however authorised, can
    rewrite the audit trail. The maintenance role is bounded by its grants (`MAINTENANCE_GRANTS`, revision
    0012); every statement retention runs names its organization explicitly.
    """
    with system_session() as session:
        yield session


@contextmanager
def run_lock() -> Iterator[None]:
    """Hold the retention advisory lock for the block; Conflict when another run (or restore) holds it."""
    with translated(what="the retention lock"), get_engine().connect() as connection:
        acquired = q.try_run_lock(connection=connection)
        connection.commit()
        if not acquired:
            raise Conflict("another enforce-retention run or restore is in progress; try again when it is done")
        try:
            yield
        finally:
            q.release_run_lock(connection=connection)
            connection.commit()
