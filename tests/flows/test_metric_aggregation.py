"""Flow aggregate-metrics against a real database: exact, incremental, late and concurrent points, kills, alerts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from flows.metric_aggregation import aggregate_metrics
from flows.runtime import run_flow
from tests.factories import Db

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

# The same statistics, computed directly from the raw points: what every rollup must equal.
EXPECTED = """
SELECT m.deployment_id, m.metric_name, :g AS granularity, date_trunc(:g, m.recorded_at, 'UTC') AS bucket_start,
       count(*) AS sample_count, sum(value) AS value_sum, min(value) AS value_min, max(value) AS value_max,
       avg(value) AS value_mean, percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99, count(*) FILTER (WHERE is_anomaly) AS anomaly_count
FROM model_monitoring m GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 4
"""
ACTUAL = """
SELECT deployment_id, metric_name, granularity, bucket_start, sample_count, value_sum, value_min, value_max,
       value_mean, p50, p95, p99, anomaly_count
FROM model_monitoring_rollups WHERE granularity = :g ORDER BY 1, 2, 4
"""


def returning(db: Db, sql: str, **params):
    """Run an INSERT ... RETURNING in its own committed transaction."""
    with db.engine.begin() as conn:
        return conn.execute(text(sql), params).scalar_one()


def insert_points(db: Db, deployment_id, n: int, *, start: datetime, hours: float, seed: int, metric="latency_ms"):
    """n points spread over `hours` from `start`, values from a deterministic sequence (SQL, one statement)."""
    db.run(
        "INSERT INTO model_monitoring (deployment_id, metric_name, value, threshold_max, recorded_at) "
        "SELECT :d, :m, 20 + ((i * 7919 + :seed) % 1000) / 10.0, 110, "
        "       CAST(:start AS timestamptz) + (i * CAST(:span AS float8) / :n) * interval '1 second' "
        "FROM generate_series(0, :n - 1) AS i",
        d=deployment_id,
        m=metric,
        seed=seed,
        start=start,
        span=hours * 3600,
        n=n,
    )


def assert_exact(db: Db) -> None:
    for g in ("hour", "day"):
        expected = [dict(r) for r in db.all(EXPECTED, g=g)]
        actual = [dict(r) for r in db.all(ACTUAL, g=g)]
        assert len(actual) == len(expected), g
        for e, a in zip(expected, actual, strict=True):
            for key in ("value_sum", "value_mean", "p50", "p95", "p99"):
                assert a[key] == pytest.approx(e[key], rel=1e-12), (g, key, e["bucket_start"])
            assert {k: a[k] for k in a if k not in ("value_sum", "value_mean", "p50", "p95", "p99")} == {
                k: e[k] for k in e if k not in ("value_sum", "value_mean", "p50", "p95", "p99")
            }


@pytest.fixture
def setup(tenants_db):
    url, alpha, beta = tenants_db
    db = Db(url)
    return db, alpha, beta


def aggregate(**params):
    return run_flow(aggregate_metrics, orchestrate=False, **params)


class TestRollups:
    def test_backfill_then_incremental_runs_are_exact_and_touch_only_new_buckets(self, setup):
        db, alpha, beta = setup
        insert_points(db, alpha["deployment_production"], 3000, start=NOW - timedelta(days=3), hours=72, seed=1)
        insert_points(db, beta["deployment_production"], 500, start=NOW - timedelta(hours=5), hours=5, seed=2)
        first = aggregate()
        assert {o["organization"]: o["backfilled_windows"] for o in first["organizations"]} == {"alpha": 1, "beta": 1}
        assert_exact(db)

        # new points now and late points two days back, in one bucket each
        insert_points(db, alpha["deployment_production"], 40, start=NOW, hours=0.5, seed=3)
        insert_points(db, alpha["deployment_production"], 25, start=NOW - timedelta(days=2), hours=0.5, seed=4)
        second = aggregate(organization="alpha")
        run = second["organizations"][0]
        assert (run["hour_buckets"], run["day_buckets"], run["backfilled_windows"]) == (2, 2, 0)
        assert_exact(db)
        assert db.one("SELECT count(*) FROM model_monitoring_invalidations") == 0

    def test_a_reader_starting_mid_bucket_gets_whole_rollups_not_a_partial_raw_bucket(self, setup):
        db, alpha, _ = setup
        insert_points(db, alpha["deployment_production"], 600, start=NOW - timedelta(hours=6), hours=6, seed=7)
        aggregate()
        from db.queries.metrics import read_series
        from db.session import session_scope

        with session_scope(alpha["org"]) as session:
            rows = read_series(
                session=session,
                deployment_id=alpha["deployment_production"],
                granularity="hour",
                since=NOW - timedelta(hours=5, minutes=40),
                metric="latency_ms",
            )
        assert {r.source for r in rows} == {"rollup"}
        assert [r.bucket_start for r in rows] == [NOW - timedelta(hours=h) for h in range(6, 0, -1)]
        assert [r.sample_count for r in rows] == [100] * 6

    def test_a_rerun_with_nothing_new_changes_nothing(self, setup):
        db, alpha, _ = setup
        insert_points(db, alpha["deployment_production"], 500, start=NOW - timedelta(hours=10), hours=10, seed=5)
        aggregate()
        before = db.all("SELECT id, updated_at, sample_count FROM model_monitoring_rollups ORDER BY id")
        again = aggregate()
        assert all(o["rollups_written"] == 0 for o in again["organizations"])
        assert db.all("SELECT id, updated_at, sample_count FROM model_monitoring_rollups ORDER BY id") == before

    def test_a_point_committed_late_by_a_long_transaction_is_not_skipped(self, setup):
        db, alpha, _ = setup
        aggregate()
        with db.engine.connect() as slow:
            slow.begin()
            slow.execute(
                text(
                    "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
                    "VALUES (:d, 'latency_ms', 999, :at)"
                ),
                {"d": alpha["deployment_production"], "at": NOW - timedelta(hours=30)},
            )
            insert_points(db, alpha["deployment_production"], 10, start=NOW, hours=0.2, seed=6)
            aggregate()  # runs while the long transaction is open: its point is invisible yet
            slow.commit()
        aggregate()
        assert_exact(db)
        assert db.one("SELECT max(value_max) FROM model_monitoring_rollups WHERE granularity = 'hour'") == 999

    def test_concurrent_runs_never_double_count(self, setup):
        db, alpha, _ = setup
        insert_points(db, alpha["deployment_production"], 4000, start=NOW - timedelta(days=2), hours=48, seed=7)
        aggregate()
        for seed in range(8, 12):
            insert_points(db, alpha["deployment_production"], 300, start=NOW - timedelta(hours=20), hours=20, seed=seed)
        errors: list[BaseException] = []

        def one() -> None:
            try:
                aggregate(organization="alpha")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        aggregate()  # whatever a busy run left is finished by the next
        assert_exact(db)
        assert db.one("SELECT count(*) FROM model_monitoring_invalidations") == 0

    def test_a_killed_run_leaves_its_work_for_the_next(self, setup, tmp_path: Path):
        db, alpha, _ = setup
        insert_points(db, alpha["deployment_production"], 150_000, start=NOW - timedelta(days=20), hours=480, seed=13)
        env = {**os.environ, "MLOPS_ORCHESTRATE": "never"}
        child = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlops"), "aggregate", "--org", "alpha"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while db.one("SELECT count(*) FROM model_monitoring_rollups") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # kill it once it has committed part of the backfill
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert db.one("SELECT backfilled_at FROM model_monitoring_aggregation_state") is None
        aggregate()
        assert_exact(db)

    def test_rollups_of_buckets_whose_raw_points_were_deleted_are_kept(self, setup):
        db, alpha, _ = setup
        old = NOW - timedelta(days=100)
        insert_points(db, alpha["deployment_production"], 60, start=old, hours=1, seed=14)
        aggregate()
        kept = db.one(
            "SELECT sample_count FROM model_monitoring_rollups WHERE granularity = 'hour' AND bucket_start = :b", b=old
        )
        db.run("DELETE FROM model_monitoring WHERE recorded_at < :t", t=old + timedelta(hours=2))  # retention
        insert_points(db, alpha["deployment_production"], 1, start=old + timedelta(minutes=5), hours=0.01, seed=15)
        aggregate()
        assert kept == 60
        assert (
            db.one(
                "SELECT sample_count FROM model_monitoring_rollups WHERE granularity = 'hour' AND bucket_start = :b",
                b=old,
            )
            == 60
        )

    def test_points_outside_thresholds_are_marked_and_non_finite_values_refused(self, setup):
        db, alpha, _ = setup
        insert_points(db, alpha["deployment_production"], 100, start=NOW - timedelta(hours=1), hours=1, seed=16)
        anomalies = db.one("SELECT count(*) FROM model_monitoring WHERE value > 110 AND metric_name = 'latency_ms'")
        assert anomalies > 0
        assert (
            db.one("SELECT count(*) FROM model_monitoring WHERE is_anomaly AND metric_name = 'latency_ms'") == anomalies
        )
        for bad in ("NaN", "Infinity", "-Infinity"):
            with pytest.raises(IntegrityError, match="value_finite"):
                db.run(
                    "INSERT INTO model_monitoring (deployment_id, metric_name, value) "
                    "VALUES (:d, 'x', CAST(:v AS float8))",
                    d=alpha["deployment_production"],
                    v=bad,
                )
        aggregate()
        assert (
            db.one(
                "SELECT sum(anomaly_count) FROM model_monitoring_rollups r "
                "WHERE granularity = 'day' AND metric_name = 'latency_ms'"
            )
            == anomalies
        )

    def test_organizations_without_an_active_subscription_are_skipped(self, setup):
        db, alpha, beta = setup
        db.run("UPDATE organizations SET subscription_status = 'suspended' WHERE id = :o", o=beta["org"])
        before = db.all("SELECT * FROM model_monitoring_rollups WHERE organization_id = :o", o=beta["org"])
        summary = aggregate()
        assert [o["organization"] for o in summary["organizations"]] == ["alpha"]
        assert "skipped organization 'beta': subscription is suspended" in summary["notes"]
        assert db.all("SELECT * FROM model_monitoring_rollups WHERE organization_id = :o", o=beta["org"]) == before


def configure_alerts(db: Db, deployment_id, alerts: dict) -> None:
    db.run(
        "UPDATE deployments SET deployment_config = CAST(:c AS jsonb) WHERE id = :d",
        c=json.dumps({"monitoring": {"alerts": alerts}}),
        d=deployment_id,
    )


def latency_hours(db: Db, deployment_id, values: list[float]) -> None:
    """One point per hour ending with the current hour, the last value now."""
    for i, value in enumerate(reversed(values)):
        db.run(
            "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
            "VALUES (:d, 'latency_p95_ms', :v, :at)",
            d=deployment_id,
            v=value,
            at=NOW - timedelta(hours=i) + timedelta(minutes=1),
        )


class TestAlerts:
    ALERTS = """SELECT id, status, alert_type, severity, message FROM alerts
                WHERE deployment_id = :d AND alert_type = 'high_latency' ORDER BY triggered_at"""

    def test_breach_opens_one_alert_updates_it_keeps_an_acknowledgement_then_resolves(self, setup):
        db, alpha, _ = setup
        dep = alpha["deployment_production"]
        db.run("DELETE FROM alerts")
        configure_alerts(db, dep, {"high_latency": {"max": 50, "buckets": 2}, "resolve_after": 2})
        latency_hours(db, dep, [40, 60, 70])
        aggregate()
        [alert] = db.all(self.ALERTS, d=dep)
        assert (alert["status"], alert["severity"]) == ("open", "high")
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'alert.opened'") == 1
        assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'alert.open'") == 1

        db.run("UPDATE alerts SET status = 'acknowledged' WHERE id = :a", a=alert["id"])
        latency_hours(db, dep, [80])  # still breaching
        aggregate()
        [same] = db.all(self.ALERTS, d=dep)
        assert (same["id"], same["status"]) == (alert["id"], "acknowledged")
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'alert.opened'") == 1

        db.run("DELETE FROM model_monitoring WHERE deployment_id = :d", d=dep)
        db.run("DELETE FROM model_monitoring_rollups WHERE deployment_id = :d", d=dep)
        latency_hours(db, dep, [30, 31, 32])
        aggregate()
        [resolved] = db.all(self.ALERTS, d=dep)
        assert resolved["status"] == "resolved"
        events = db.all(
            "SELECT event_type, severity, payload FROM notification_events "
            "WHERE event_type LIKE 'alert.%' ORDER BY created_at"
        )
        assert [e["event_type"] for e in events] == ["alert.opened", "alert.resolved"]
        aggregate()  # nothing changes on a rerun
        assert len(db.all(self.ALERTS, d=dep)) == 1

    def test_a_bad_alert_configuration_skips_that_deployment_only(self, setup):
        db, alpha, _ = setup
        configure_alerts(db, alpha["deployment_production"], {"high_latency": {"max": "fast"}})
        configure_alerts(db, alpha["deployment_staging"], {"high_latency": {"max": 50, "buckets": 1}})
        latency_hours(db, alpha["deployment_staging"], [90])
        summary = aggregate(organization="alpha")
        [run] = summary["organizations"]
        assert run["alerts_opened"] == 1
        assert any("high_latency.max must be a finite number" in n for n in run["notes"])


class TestExperiments:
    def test_ended_runs_are_summarised_and_finished_experiments_completed_once(self, setup):
        db, alpha, _ = setup
        exp = returning(
            db,
            "INSERT INTO experiments (organization_id, project_id, name, created_by) "
            "VALUES (:o, :p, 'tune', :u) RETURNING id",
            o=alpha["org"],
            p=alpha["project"],
            u=alpha["admin"],
        )
        runs = []
        for status in ("completed", "failed"):
            runs.append(
                returning(
                    db,
                    "INSERT INTO experiment_runs (experiment_id, status, started_at, completed_at) "
                    "VALUES (:e, :s, now() - interval '90 seconds', now()) RETURNING id",
                    e=exp,
                    s=status,
                )
            )
        db.run(
            "INSERT INTO run_metrics (run_id, metric_name, value, step) VALUES "
            "(:r, 'loss', 0.9, 0), (:r, 'loss', 0.3, 1), (:r, 'loss', 0.4, 2), "
            "(:r, 'accuracy', 0.7, 0), (:r, 'accuracy', 0.8, 1), (:r, 'accuracy', 0.75, 2)",
            r=runs[0],
        )
        aggregate()
        metrics = db.one("SELECT metrics FROM experiment_runs WHERE id = :r", r=runs[0])
        assert metrics["loss"] == {"last": 0.4, "min": 0.3, "max": 0.9, "best_step": 1}
        assert metrics["accuracy"] == {"last": 0.75, "min": 0.7, "max": 0.8, "best_step": 1}
        assert db.one("SELECT duration_seconds FROM experiment_runs WHERE id = :r", r=runs[0]) == 90
        row = db.all("SELECT status, completed_at FROM experiments WHERE id = :e", e=exp)[0]
        assert row["status"] == "completed" and row["completed_at"] is not None
        aggregate()
        assert db.one("SELECT count(*) FROM notification_events WHERE trigger_type = 'experiment_complete'") == 1
