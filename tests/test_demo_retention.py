"""The demo's retention step: seeds old audit rows once, dry-runs, archives, and is idempotent."""

from __future__ import annotations

import pytest

from demo.retention import run_retention_demo
from demo.seed import seed_demo
from services.storage import open_store
from tests.factories import Db


@pytest.mark.slow
def test_demo_archives_old_rows_once(fresh_db, tmp_path, monkeypatch, prefect_harness):
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "artifacts").as_uri())
    seed_demo()
    lines: list[str] = []
    run_retention_demo(lines.append)
    text = "\n".join(lines)
    assert "seeded 10 audit rows" in text and "would remove 10" in text
    assert "retention/audit_logs/acme/2023-03.parquet" in text and "retention/audit_logs/acme/2023-04.parquet" in text
    assert open_store().exists("retention/audit_logs/acme/2023-04.manifest.json")
    again: list[str] = []
    run_retention_demo(again.append)
    assert "archived already" in again[0] and "unchanged: no audit row" in "\n".join(again)
    db = Db(fresh_db)
    assert db.one("SELECT count(*) FROM audit_logs WHERE created_at < '2024-01-01'") == 0
    assert db.one("SELECT sum(row_count) FROM retention_archives") == 10
    db.close()
