"""`make demo` twice: the second run duplicates nothing (the README's claim)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from demo.run import run_demo
from tasks.drift_detection import drift_window
from tests.factories import Db

# what a rerun must leave exactly as it was (its own runs are audited: checked below)
COUNTS = {
    "model versions": "SELECT count(*) FROM model_versions",
    "stage transitions": "SELECT count(*) FROM model_stage_transitions",
    "stages": "SELECT string_agg(version || ':' || stage, ',' ORDER BY version) FROM model_versions",
    "drift reports": "SELECT count(*) FROM data_drift_reports",
    "alerts": "SELECT count(*) FROM alerts",
    "events": "SELECT count(*) FROM notification_events",
    "rollups": "SELECT count(*) FROM model_monitoring_rollups",
    "retention archives": "SELECT count(*) FROM retention_archives",
}


@pytest.mark.slow
def test_a_second_demo_duplicates_nothing(fresh_db, tmp_path, monkeypatch, prefect_harness):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "artifacts").as_uri())
    db = Db(fresh_db)
    window = drift_window(datetime.now(UTC), 60)
    first: list[str] = []
    run_demo(first.append)
    text = "\n".join(first)
    assert "1.1.0: staging -> production (promoted by admin@acme.example)" in text, text
    assert "pass  drift                fraud-api-staging: no drift in the report ending" in text, text
    before = {name: db.one(sql) for name, sql in COUNTS.items()}
    audit = {r["action"]: r["count"] for r in db.all("SELECT action, count(*) FROM audit_logs GROUP BY action")}
    second: list[str] = []
    run_demo(second.append)
    again = "\n".join(second)
    if drift_window(datetime.now(UTC), 60) != window:
        pytest.skip("the hour turned during the test: drift analysed a new window")
    assert {name: db.one(sql) for name, sql in COUNTS.items()} == before
    audit_after = {r["action"]: r["count"] for r in db.all("SELECT action, count(*) FROM audit_logs GROUP BY action")}
    added = {a: n - audit.get(a, 0) for a, n in audit_after.items() if n != audit.get(a, 0)}
    # the rerun's own runs are audited: the rejected promotion, the two drift reports it re-wrote, retention
    assert added == {"model_version.promote.rejected": 1, "data_drift_report.write": 2, "retention.enforce": 1}
    assert "1.3.0: unchanged" in again and "1.1.0 is already in production: nothing to do" in again
    db.close()
