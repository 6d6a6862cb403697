"""Run Alembic programmatically (the `mlops db` commands and the test harness) against any URL."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, pool, text

from core.errors import InvalidInput
from db.errors import translated
from db.url import migration_database_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_DROP_TABLE = re.compile(r"\bDROP TABLE (?:IF EXISTS )?\"?(\w+)\"?", re.IGNORECASE)
_DROP_COLUMN = re.compile(r"\bALTER TABLE \"?(\w+)\"? DROP COLUMN (?:IF EXISTS )?\"?(\w+)\"?", re.IGNORECASE)


def alembic_config(url: str | None = None) -> Config:
    """The `[tool.alembic]` configuration of pyproject.toml, pointed at `url` (default: the owner's
    `MLOPS_MIGRATION_DATABASE_URL`, see `db.url`)."""
    config = Config(toml_file=str(PROJECT_ROOT / "pyproject.toml"))
    config.attributes["database_url"] = url or migration_database_url()
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("postgresql+psycopg://unused"))


def validate_revision(revision: str) -> None:
    """InvalidInput unless `revision` names a revision Alembic knows (`head`, `base`, an id, `-1`, ...),
    checked before anything connects to the database."""
    if revision in ("head", "heads", "base") or re.fullmatch(r"[+-]\d+", revision):
        return
    try:
        found = _script().get_revisions(revision)
    except CommandError:
        found = ()
    if not found:
        raise InvalidInput(f"unknown revision '{revision}'; `mlops db current` shows where the database is")


def upgrade(revision: str = "head", *, url: str | None = None) -> None:
    validate_revision(revision)
    try:
        with translated(what="the schema"):
            command.upgrade(alembic_config(url), revision)
    except CommandError as exc:  # e.g. a relative revision past the head
        raise InvalidInput(f"cannot upgrade to '{revision}': {str(exc).splitlines()[0]}") from None


def downgrade(revision: str, *, url: str | None = None) -> None:
    validate_revision(revision)
    try:
        with translated(what="the schema"):
            command.downgrade(alembic_config(url), revision)
    except CommandError as exc:  # e.g. a target above the current revision
        raise InvalidInput(f"cannot downgrade to '{revision}': {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True)
class DowngradePlan:
    """What `downgrade` to `target` would remove from the database at `current`."""

    current: str | None
    target: str
    tables: tuple[str, ...] = ()  # tables the downgrade drops (that exist now)
    columns: tuple[str, ...] = ()  # "table.column" it drops
    holding_data: tuple[str, ...] = field(default=())  # those of the above that hold rows / values now

    @property
    def drops_anything(self) -> bool:
        return bool(self.tables or self.columns)

    def describe(self) -> str:
        parts = []
        if self.tables:
            parts.append(f"{len(self.tables)} table(s): {', '.join(self.tables)}")
        if self.columns:
            parts.append(f"{len(self.columns)} column(s): {', '.join(self.columns)}")
        return "; ".join(parts) or "no table or column"


def downgrade_plan(revision: str, *, url: str | None = None) -> DowngradePlan:
    """Which tables and columns a downgrade to `revision` drops, and which of them hold data now.

    The migrations' own downgrade SQL is rendered offline (nothing runs) and read for DROP TABLE / DROP
    COLUMN; the row checks run as the owner with FORCE ROW LEVEL SECURITY lifted inside a transaction that
    is rolled back, because FORCE would hide every row from the owner and make a full table look empty.
    """
    validate_revision(revision)
    url = url or migration_database_url()
    current = current_revision(url=url)
    if current is None:
        return DowngradePlan(current=None, target=revision)
    config = alembic_config(url)
    buffer = io.StringIO()
    config.output_buffer = buffer
    try:
        command.downgrade(config, f"{current}:{revision}", sql=True)
    except CommandError as exc:
        raise InvalidInput(f"cannot downgrade to '{revision}': {str(exc).splitlines()[0]}") from None
    sql = buffer.getvalue()
    tables = tuple(dict.fromkeys(_DROP_TABLE.findall(sql)))
    columns = tuple(dict.fromkeys(f"{t}.{c}" for t, c in _DROP_COLUMN.findall(sql) if t not in tables))
    return DowngradePlan(
        current=current,
        target=revision,
        tables=tables,
        columns=columns,
        holding_data=_holding_data(url, tables, columns),
    )


def _holding_data(url: str, tables: tuple[str, ...], columns: tuple[str, ...]) -> tuple[str, ...]:
    engine = create_engine(url, poolclass=pool.NullPool)
    found: list[str] = []
    try:
        with translated(what="the schema"), engine.connect() as conn, conn.begin() as tx:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            existing = set(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")))
            # a superuser or BYPASSRLS owner sees every row anyway; a plain owner under FORCE sees none
            bypass = conn.scalar(text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"))
            forced = set(
                conn.scalars(
                    text(
                        "SELECT relname FROM pg_class WHERE relforcerowsecurity "
                        "AND relnamespace = current_schema()::regnamespace"
                    )
                )
            )
            checks = [(t, t, "true") for t in tables] + [
                (c, c.split(".")[0], f'"{c.split(".")[1]}" IS NOT NULL') for c in columns
            ]
            for name, table, condition in checks:
                if table not in existing:
                    continue
                # identifiers come from the project's own migrations (\w+ only), never from the user
                if table in forced and not bypass:
                    conn.execute(text(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY'))
                if conn.scalar(text(f'SELECT EXISTS (SELECT 1 FROM "{table}" WHERE {condition})')):
                    found.append(name)
            tx.rollback()
    finally:
        engine.dispose()
    return tuple(found)


def check(*, url: str | None = None) -> None:
    """Raise `alembic.util.exc.AutogenerateDiffsDetected` when models and migrations disagree."""
    with translated():
        command.check(alembic_config(url))


def current_revision(*, url: str | None = None) -> str | None:
    """The revision the database is at, or None for an empty database."""
    engine = create_engine(url or migration_database_url(), poolclass=pool.NullPool)
    try:
        with translated(), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return _script().get_current_head()
