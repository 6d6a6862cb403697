"""Flow aggregate-metrics run both ways (orchestrated, and direct as `mlops aggregate` runs it without a Prefect
API): the same exact rollups, incremental runs and alerts."""

from __future__ import annotations

from datetime import timedelta

from flows.metric_aggregation import aggregate_metrics
from tests.flows import test_metric_aggregation as aggregation

setup = aggregation.setup  # two tenants with deployments and no monitoring points yet
NOW = aggregation.NOW


def test_rollups_are_exact_and_incremental_both_ways(setup, flow_runner):
    db, alpha, beta = setup
    aggregation.insert_points(db, alpha["deployment_production"], 600, start=NOW - timedelta(days=2), hours=48, seed=1)
    aggregation.insert_points(db, beta["deployment_production"], 100, start=NOW - timedelta(hours=3), hours=3, seed=2)
    first = flow_runner(aggregate_metrics)
    assert {o["organization"]: o["status"] for o in first["organizations"]} == {"alpha": "done", "beta": "done"}
    aggregation.assert_exact(db)
    aggregation.insert_points(db, alpha["deployment_production"], 20, start=NOW, hours=0.5, seed=3)
    second = flow_runner(aggregate_metrics, organization="alpha")
    [run] = second["organizations"]
    assert (run["hour_buckets"], run["day_buckets"], run["backfilled_windows"]) == (1, 1, 0)
    aggregation.assert_exact(db)


def test_a_breach_opens_one_alert_with_its_event_both_ways(setup, flow_runner):
    db, alpha, _ = setup
    dep = alpha["deployment_production"]
    db.run("DELETE FROM alerts")
    aggregation.configure_alerts(db, dep, {"high_latency": {"max": 50, "buckets": 2}})
    aggregation.latency_hours(db, dep, [40, 60, 70])
    summary = flow_runner(aggregate_metrics, organization="alpha")
    assert summary["organizations"][0]["alerts_opened"] == 1 and summary["failed"] == []
    [alert] = db.all(aggregation.TestAlerts.ALERTS, d=dep)
    assert (alert["status"], alert["severity"]) == ("open", "high")
    assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'alert.opened'") == 1
