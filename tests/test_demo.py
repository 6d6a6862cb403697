"""`make demo` twice: the second run duplicates nothing (the README's claim), and the first prints what the
README shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from demo.run import LOGGED_HOURS_AHEAD, run_demo
from flows.drift_detection import detect_drift
from flows.runtime import run_flow
from tasks.drift.rules import drift_window
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
    printed = {normalised(line) for line in text.splitlines()}
    missing = [line for line in readme_sample() if normalised(line) not in printed and not clock_bound(line)]
    assert not missing, "the README's sample output differs from what the demo prints:\n" + "\n".join(missing)
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
    assert "1.3.0: unchanged" in again and "unchanged: 1.1.0 is already in production" in again
    # every step says it changed nothing, drift included: both drift runs found this window's reports as they were
    assert "fraud-api-staging (staging): no drift: 0 of 8 columns drifted" in again
    assert again.count("(unchanged: this window was reported before)") == 2, again
    assert "its event was emitted once, by the first run" in again
    for step in (
        "unchanged: organization 'acme' is seeded already",
        "acme: unchanged: no new or late points",
        "unchanged: no audit row is past its retention period",
        "unchanged: the failed forced rollout",
        "unchanged: the receiver got nothing new",
    ):
        assert step in again, step
    # inputs are logged ahead of the window: the hourly deployment's next scheduled runs find data to analyse
    start = window[1] + timedelta(hours=LOGGED_HOURS_AHEAD - 1)
    later = run_flow(
        detect_drift,
        orchestrate=False,
        deployment="acme/fraud-detection/fraud-api-prod",
        environment="production",
        start=start,
        end=start + timedelta(hours=1),
    )
    assert [o["status"] for o in later["outcomes"]] == ["reported"], later
    db.close()


README = Path(__file__).resolve().parents[1] / "README.md"
# what changes from run to run: addresses, ids, clock times, where the store is
VARIABLE = [
    (r"127\.0\.0\.1:(\d+|…)", "127.0.0.1:…"),
    (r"alert [0-9a-f-]{36}", "alert …"),
    (r"^ {3}[0-9a-f]{8}  signature", "   …         signature"),
    (r"ending [0-9.…]+ h ago", "ending … h ago"),
    (r"^ {3}(\d{4}-\d{2}-\d{2}|…) +\d{2}:00  n=", "   …  n="),
    (r"as of (\d{4}-\d{2}-\d{2}|…)", "as of …"),
    (r"file://\S*?/(models|drift-reports)/", r"file://…/\1/"),
    (r"(\d{8}T\d{6}Z-\d{8}T\d{6}Z|…)\.html", "….html"),
]


def normalised(line: str) -> str:
    for pattern, replacement in VARIABLE:
        line = re.sub(pattern, replacement, line)
    return line.rstrip()


def clock_bound(line: str) -> bool:
    """The rollup counts and the hourly latency table: the demo seeds its monitoring points relative to the time it
    runs, so how they fall into hour and day buckets depends on the time of day."""
    return "bucket" in line or bool(re.match(r" {3}(\d{4}-\d{2}-\d{2}|…) +\d{2}:00  n=", line))


def readme_sample() -> list[str]:
    """The lines of the README's `make demo` sample output."""
    text = README.read_text()
    start = text.index("```\n", text.index("`make demo` prints what each flow did")) + 4
    return [line for line in text[start : text.index("```", start)].splitlines() if line.strip()]
