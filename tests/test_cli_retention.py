"""`mlops retention` as operators run it: a real process, real database, local artifact store, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import Db
from tests.fixtures.database import role_env
from tests.flows.test_retention import audit_rows, seed_audit

MLOPS = str(Path(sys.executable).with_name("mlops"))


@pytest.fixture
def env(tenants_db, tmp_path):
    url, alpha, _ = tenants_db
    run_env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_API_KEY", "MLOPS_AS", "MLOPS_ORG")}
    run_env.update(role_env(url))
    run_env.update(
        MLOPS_HOME=str(tmp_path / "home"),
        MLOPS_ORCHESTRATE="never",
        MLOPS_ARTIFACT_URI=(tmp_path / "artifacts").as_uri(),
    )
    db = Db(url)
    seed_audit(db, alpha["org"], alpha["admin"], 40, step_hours=36)  # Sept and Oct 2024: expired for years now
    yield run_env, db, alpha
    db.close()


def mlops(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MLOPS, "retention", *args], env=env, capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.slow
def test_dry_run_then_run_then_archives_then_restore_twice(env):
    run_env, db, alpha = env
    from datetime import UTC, datetime, timedelta

    cutoff = datetime.now(UTC) - timedelta(days=730)
    original = audit_rows(db, alpha["org"], cutoff)

    dry = mlops(run_env, "--org", "alpha", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "DRY RUN" in dry.stdout
    assert "retention/audit_logs/alpha/2024-09.parquet" in dry.stdout
    assert len(audit_rows(db, alpha["org"], cutoff)) == 40

    real = mlops(run_env, "--org", "alpha", "--json")
    assert real.returncode == 0, real.stderr
    report = json.loads(real.stdout)["organizations"][0]
    assert {c["category"]: c["count"] for c in report["categories"]}["audit_logs"] == 40
    assert audit_rows(db, alpha["org"], cutoff) == []

    listed = mlops(run_env, "archives", "--org", "alpha")
    assert listed.returncode == 0, listed.stderr
    assert "2024-09" in listed.stdout and "retention/audit_logs/alpha/2024-10.parquet" in listed.stdout

    first = mlops(run_env, "restore", "audit_logs", "--org", "alpha", "--month", "2024-09", "--json")
    assert first.returncode == 0, first.stderr
    again = mlops(run_env, "restore", "audit_logs", "--org", "alpha", "--month", "2024-09", "--json")
    assert json.loads(again.stdout)["inserted"] == 0
    assert json.loads(again.stdout)["already_present"] == json.loads(first.stdout)["inserted"] > 0
    assert mlops(run_env, "restore", "audit_logs", "--org", "alpha", "--month", "2024-10").returncode == 0
    assert audit_rows(db, alpha["org"], cutoff) == original
    assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'retention.restore'") == 3


def test_errors_are_one_line_with_exit_codes(env):
    run_env, db, _ = env
    bad_month = mlops(run_env, "restore", "audit_logs", "--org", "alpha", "--month", "2024-13")
    assert bad_month.returncode == 2 and "YYYY-MM" in one_line_error(bad_month)
    bad_category = mlops(run_env, "restore", "experiments", "--org", "alpha", "--month", "2024-09")
    assert bad_category.returncode == 2 and "audit_logs" in one_line_error(bad_category)
    missing = mlops(run_env, "restore", "audit_logs", "--org", "alpha", "--month", "2019-01")
    assert missing.returncode == 2 and "no audit log archive" in one_line_error(missing)
    unknown = mlops(run_env, "--org", "nope", "--dry-run")
    assert unknown.returncode == 2 and "nope" in one_line_error(unknown)
    viewer = mlops(run_env, "--org", "alpha", "--as", "viewer@alpha.example")
    assert viewer.returncode == 3, viewer.stderr
    one_line_error(viewer)
    assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'retention.enforce.denied'") == 1
    assert db.one("SELECT count(*) FROM retention_archives WHERE period >= '2024-01'") == 0
