"""`mlops db`: unknown revisions, downgrades that would drop data, and two first upgrades at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, pool

from tests.factories import make_tenant
from tests.fixtures.cli import MLOPS, mlops, one_line_error, scalar
from tests.fixtures.database import TEMPLATE, role_env


@pytest.fixture
def own_db(pg_server, template_url, tmp_path):
    """A migrated database of this test's own, and the CLI environment pointing at it."""
    name = f"dbcli_{uuid.uuid4().hex[:12]}"
    url = pg_server.create(name, template=TEMPLATE)
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_API_KEY", "MLOPS_AS", "MLOPS_ORG")}
    env.update(role_env(url), MLOPS_HOME=str(tmp_path / "home"), MLOPS_ORCHESTRATE="never")
    yield env
    pg_server.drop(name)


def _tables(env: dict) -> set[str]:
    engine = create_engine(env["MLOPS_MIGRATION_DATABASE_URL"], poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


class TestRevisions:
    @pytest.mark.parametrize("command", ["upgrade", "downgrade"])
    def test_an_unknown_revision_is_one_line_and_exit_2(self, own_db, command):
        result = mlops(own_db, "db", command, "nonsense")
        assert result.returncode == 2
        assert "unknown revision 'nonsense'" in one_line_error(result)


class TestDowngrade:
    def test_refuses_to_drop_tables_that_hold_rows_without_yes(self, own_db):
        _with_a_tenant(own_db)
        before = _tables(own_db)
        result = mlops(own_db, "db", "downgrade", "base")
        assert result.returncode == 2
        line = one_line_error(result)
        assert "drops" in line and "organizations" in line and "--yes" in line
        assert _tables(own_db) == before
        assert scalar(own_db, "SELECT count(*) FROM organizations WHERE slug = 'keep'") == 1

        forced = mlops(own_db, "db", "downgrade", "base", "--yes")
        assert forced.returncode == 0, forced.stderr
        assert _tables(own_db) == {"alembic_version"}

    def test_a_downgrade_that_drops_only_empty_tables_says_what_it_drops(self, own_db):
        result = mlops(own_db, "db", "downgrade", "0008")
        assert result.returncode == 0, result.stderr
        assert "retention_archives" in result.stderr
        assert "retention_archives" not in _tables(own_db)

    def test_a_dropped_column_holding_values_counts_as_data(self, own_db):
        _with_a_tenant(own_db)
        result = mlops(own_db, "db", "downgrade", "0005")
        assert result.returncode == 2
        assert "model_monitoring.organization_id" in one_line_error(result)
        assert "model_monitoring_rollups" in _tables(own_db)


def _with_a_tenant(env: dict) -> None:
    engine = create_engine(env["MLOPS_MIGRATION_DATABASE_URL"], poolclass=pool.NullPool)
    with engine.begin() as conn:
        make_tenant(conn, "keep")
    engine.dispose()


@pytest.mark.slow
def test_two_first_upgrades_on_a_fresh_home_both_succeed():
    # not under pytest's tmp_path: concurrent pytest sessions of the same user prune each other's old basetemp
    # directories, which would pull the data directory from under the server being initialised
    home = Path(tempfile.mkdtemp(prefix="mlops-first-upgrade-")) / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MLOPS_MIGRATION_DATABASE_URL", "MLOPS_MAINTENANCE_DATABASE_URL")
    }
    env.update(MLOPS_HOME=str(home), MLOPS_SECRET_KEY="")
    try:
        runs = [
            subprocess.Popen(
                [MLOPS, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outcomes = [(run.wait(timeout=240), *run.communicate()) for run in runs]
        for code, stdout, stderr in outcomes:
            assert code == 0, stderr
            assert "database at revision" in stdout
        keys = (home / "secret.key").read_text().split()
        assert len(keys) == 1  # made once, by the first upgrade, and kept by the second
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
