"""Zero-downtime migrations: every new revision (after 0007) runs while a writer inserts into its tables.

The harness discovers the revisions after the last released one (0007), present and future, migrates a database
to each one's parent, fills it with two tenants and `SEED_ROWS` monitoring points, then runs the revision while a
writer thread inserts into every table the revision names, one short transaction per statement. It reports the
longest time a writer statement waited and fails when one waited longer than `WAIT_BUDGET_S` or hit its
`lock_timeout`: a revision that rewrites or scans a hot table under a lock that blocks inserts. The size is test
scale: a heavy statement on a big production table blocks for longer than here, which is why the README rule
(expand, backfill in batches, CONCURRENTLY, NOT VALID + VALIDATE, a short `lock_timeout`) applies regardless.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from db import migrate
from tests.factories import make_tenant

LAST_RELEASED = "0007"
SEED_ROWS = 50_000
WAIT_BUDGET_S = 1.0
LOCK_TIMEOUT = "5s"


def new_revisions() -> list[tuple[str, str | None, Path]]:
    """(revision, down_revision, file) of every revision after LAST_RELEASED, base to head."""
    script = migrate.ScriptDirectory.from_config(migrate.alembic_config("postgresql+psycopg://unused"))
    chain = list(reversed(list(script.walk_revisions())))
    ids = [r.revision for r in chain]
    start = ids.index(LAST_RELEASED) + 1
    return [(r.revision, r.down_revision, Path(r.path)) for r in chain[start:]]  # type: ignore[misc]


def touched_tables(source: str, tables: set[str]) -> list[str]:
    """The existing tables a revision names anywhere in its source."""
    return sorted(t for t in tables if re.search(rf"\b{re.escape(t)}\b", source))


class Writer(threading.Thread):
    """Inserts into `tables` in a loop, one transaction per statement; records the longest wait per table."""

    def __init__(self, url: str, statements: dict[str, tuple[str, dict]]) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url, poolclass=pool.NullPool)
        self.statements = statements
        self.longest: dict[str, float] = dict.fromkeys(statements, 0.0)
        self.errors: list[str] = []
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                for table, (sql, params) in self.statements.items():
                    started = time.perf_counter()
                    try:
                        with conn.begin():
                            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                            conn.execute(text(sql), params)
                    except Exception as exc:  # reported: the test fails on it
                        self.errors.append(f"{table}: {str(exc).splitlines()[0]}")
                    self.longest[table] = max(self.longest[table], time.perf_counter() - started)
                    self.count += 1
        self.engine.dispose()


def insert_statements(tables: list[str], tenant) -> dict[str, tuple[str, dict]]:
    """A real insert for the hot tables, and for any other an INSERT that takes the same ROW EXCLUSIVE lock."""
    real = {
        "model_monitoring": (
            "INSERT INTO model_monitoring (deployment_id, metric_name, value) VALUES (:d, 'latency_ms', 1)",
            {"d": tenant["deployment_production"]},
        ),
        "audit_logs": (
            "INSERT INTO audit_logs (organization_id, action, resource_type) VALUES (:o, 'probe', 'probe')",
            {"o": tenant["org"]},
        ),
    }
    return {t: real.get(t, (f"INSERT INTO {t} SELECT * FROM {t} WHERE false", {})) for t in tables}


def run_under_writes(url: str, tables: list[str], action: Callable[[], None]) -> Writer:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        tenant = make_tenant(conn, "zdt")
        conn.execute(
            text(
                "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
                "SELECT :d, 'latency_ms', g, now() - g * interval '1 second' FROM generate_series(1, :n) g"
            ),
            {"d": tenant["deployment_production"], "n": SEED_ROWS},
        )
    engine.dispose()
    writer = Writer(url, insert_statements(tables, tenant))
    writer.start()
    time.sleep(0.2)  # the writer is inserting before the change starts
    try:
        action()
    finally:
        time.sleep(0.2)
        writer.stop.set()
        writer.join(timeout=30)
    return writer


def _report(label: str, writer: Writer) -> str:
    worst = max(writer.longest.items(), key=lambda item: item[1], default=("-", 0.0))
    return f"{label}: {writer.count} writer statements, longest wait {worst[1] * 1000:.0f} ms on {worst[0]}"


REVISIONS = new_revisions()


@pytest.mark.slow
@pytest.mark.parametrize(("revision", "parent", "path"), REVISIONS, ids=[r[0] for r in REVISIONS])
def test_new_revision_does_not_block_writers(empty_db: str, revision: str, parent: str, path: Path, capsys) -> None:
    migrate.upgrade(parent, url=empty_db)
    engine = create_engine(empty_db, poolclass=pool.NullPool)
    with engine.connect() as conn:
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()) - {
            "alembic_version"
        }
    engine.dispose()
    touched = touched_tables(path.read_text(), tables)
    writer = run_under_writes(empty_db, touched, lambda: migrate.upgrade(revision, url=empty_db))
    with capsys.disabled():
        print("\n" + _report(f"revision {revision} ({len(touched)} tables)", writer))
    assert migrate.current_revision(url=empty_db) == revision
    assert writer.errors == []
    assert max(writer.longest.values(), default=0.0) < WAIT_BUDGET_S, writer.longest


def test_the_harness_sees_a_blocking_change(fresh_db: str) -> None:
    """The harness itself can fail: a change holding ACCESS EXCLUSIVE on a hot table for 1.5 s is reported."""
    engine = create_engine(fresh_db, poolclass=pool.NullPool)

    def blocking_change() -> None:
        with engine.begin() as conn:
            conn.execute(text("LOCK TABLE model_monitoring IN ACCESS EXCLUSIVE MODE"))
            conn.execute(text("SELECT pg_sleep(1.5)"))

    writer = run_under_writes(fresh_db, ["model_monitoring", "alerts"], blocking_change)
    engine.dispose()
    assert writer.longest["model_monitoring"] >= WAIT_BUDGET_S
    assert writer.longest["alerts"] < WAIT_BUDGET_S
