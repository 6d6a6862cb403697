"""Which database, as which role: the login role, the maintenance role and the owner (migrations).

Three roles (created by revision 0012, or by a DBA with `db/roles.sql`):

- `DATABASE_URL`: the login role `mlops_login` (LOGIN NOINHERIT, member of `mlops_app` only). Every flow and
  command connects with it; it reaches data only through `SET LOCAL ROLE mlops_app`, so `RESET ROLE` leads to
  a role that can read nothing.
- `MLOPS_MAINTENANCE_DATABASE_URL`: the maintenance role `mlops_maintenance`, used only by
  `db.session.system_session()`. Defaults to `DATABASE_URL` with the user name replaced by
  `mlops_maintenance` and no password (libpq then takes it from `~/.pgpass`/`PGPASSFILE`, or trust/peer).
- `MLOPS_MIGRATION_DATABASE_URL`: the schema owner, used only by `mlops db` (Alembic). Defaults to
  `DATABASE_URL` with a warning: fine for a single-user development database, wrong for production.

Without `DATABASE_URL` the embedded server under MLOPS_HOME is used: migrations run as its bootstrap superuser,
flows and commands as `mlops_login`, system work as `mlops_maintenance`, exactly as in production.
"""

from __future__ import annotations

import os
import warnings

from sqlalchemy.engine import URL, make_url

from core.settings import mlops_home, normalize_database_url

LOGIN_ROLE = "mlops_login"
MAINTENANCE_ROLE = "mlops_maintenance"


def _embedded(role: str | None) -> str:
    from db.embedded import embedded_database_url

    return embedded_database_url(mlops_home(), role=role)


def database_url() -> str:
    """The login role's URL: `DATABASE_URL`, otherwise the embedded server as `mlops_login`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return normalize_database_url(url)
    return _embedded(LOGIN_ROLE)


def maintenance_database_url() -> str:
    """`MLOPS_MAINTENANCE_DATABASE_URL`, otherwise `DATABASE_URL`'s server as `mlops_maintenance`."""
    url = os.environ.get("MLOPS_MAINTENANCE_DATABASE_URL")
    if url:
        return normalize_database_url(url)
    if os.environ.get("DATABASE_URL"):
        return with_role(database_url(), MAINTENANCE_ROLE)
    return _embedded(MAINTENANCE_ROLE)


def migration_database_url() -> str:
    """The owner's URL for migrations: `MLOPS_MIGRATION_DATABASE_URL`, else `DATABASE_URL` (with a warning),
    else the embedded server's superuser."""
    url = os.environ.get("MLOPS_MIGRATION_DATABASE_URL")
    if url:
        return normalize_database_url(url)
    if os.environ.get("DATABASE_URL"):
        warnings.warn(
            "MLOPS_MIGRATION_DATABASE_URL is not set: migrating as DATABASE_URL's role. Fine for a single-user "
            "development database; in production the application's login role must not own the schema.",
            stacklevel=2,
        )
        return database_url()
    return _embedded(None)


def with_role(url: str, role: str) -> str:
    """`url` with user name `role` and no password (`URL.set` would keep the old one for None)."""
    u = make_url(url)
    return URL.create(
        u.drivername, username=role, host=u.host, port=u.port, database=u.database, query=u.query
    ).render_as_string(hide_password=False)
