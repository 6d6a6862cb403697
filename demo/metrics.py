"""`mlops demo` step: roll the seeded monitoring points up and show fraud-api-prod's latency p95 by hour."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from demo.seed import ADMIN, ORG, PROJECT
from flows.metric_aggregation import aggregate_metrics
from flows.runtime import run_flow
from services.auth import resolve_principal
from tasks.metrics.service import read_metrics

Echo = Callable[[str], None]


def run_metrics_demo(echo: Echo, hours: int = 6) -> str:
    """Aggregate, print the hourly latency table; returns a line for the summary table."""
    summary = run_flow(aggregate_metrics, orchestrate=True, organization=ORG)
    written = sum(org["rollups_written"] for org in summary["organizations"])
    for org in summary["organizations"]:
        if not (org["hour_buckets"] or org["day_buckets"] or org["rollups_written"]):
            echo(f"{org['organization']}: unchanged: no new or late points since the last run")
            continue
        echo(
            f"{org['organization']}: {org['hour_buckets']} hour and {org['day_buckets']} day bucket(s) recomputed, "
            f"{org['rollups_written']} rollup(s) written"
            + (" (first run: backfilled every raw point)" if org["backfilled_windows"] else "")
            + f"; metric alerts opened {org['alerts_opened']}, resolved {org['alerts_resolved']}"
        )
    principal = resolve_principal(organization=ORG, as_email=ADMIN)
    rows = read_metrics(
        principal,
        project=PROJECT,
        deployment="fraud-api-prod",
        environment="production",
        metric="latency_p95_ms",
        granularity="hour",
        since=datetime.now(UTC) - timedelta(hours=hours),
    )
    echo(f"fraud-api-prod latency_p95_ms, last {hours} hours (exact percentiles over each hour's points):")
    for r in rows:
        echo(
            f"   {r.bucket_start.astimezone(UTC):%Y-%m-%d %H:00}  n={r.sample_count:<3} p50 {r.p50:6.2f}  "
            f"p95 {r.p95:6.2f}  max {r.value_max:6.2f}  anomalies {r.anomaly_count}"
        )
    hourly = sum(org["hour_buckets"] for org in summary["organizations"])
    daily = sum(org["day_buckets"] for org in summary["organizations"])
    return f"{written} ({hourly} hour and {daily} day buckets)" if written else "0 (unchanged)"
