"""Flow `aggregate-metrics`: exact hourly and daily rollups of monitoring points, metric alerts, run summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.errors import AggregationFailed
from flows.runtime import (
    ItemFailure,
    call,
    control_flow,
    finish_per_organization,
    logger,
    map_calls,
    run_name,
)
from tasks.metrics.service import OrganizationRun
from tasks.metrics.tasks import evaluate_alerts, roll_up_organization, summarise_experiments
from tasks.shared.organizations import list_organizations


@control_flow(
    name="aggregate-metrics",
    flow_run_name=run_name("aggregate-metrics-{organization}", organization="all-organizations"),
)
def aggregate_metrics(organization: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Roll up new monitoring points, raise or resolve metric alerts, and summarise finished experiment runs.

    Incremental: only the buckets touched since the last run are recomputed (late points included); each
    organization is aggregated by one run at a time, and a killed run leaves its work for the next.

    Args:
        organization: Organization slug; every organization with an active subscription when empty.
        since: Recompute every bucket from this time on (ISO 8601), not only the invalidated ones.
    """
    log = logger()
    orgs, notes = call(list_organizations, organization)
    runs = map_calls(roll_up_organization, orgs, since)
    alerts = map_calls(evaluate_alerts, orgs)
    summaries = map_calls(summarise_experiments, orgs)
    results = []
    for org, run, alert, summary in zip(orgs, runs, alerts, summaries, strict=True):
        if isinstance(run, ItemFailure):
            run = OrganizationRun(organization=org[1], status="failed", notes=[f"roll-up failed: {run}"])
        if isinstance(alert, ItemFailure):
            run.notes.append(f"alerts failed: {alert}")
            run.status = "failed"
        else:
            run.alerts_opened, run.alerts_resolved, alert_notes = alert
            run.notes += alert_notes
        if isinstance(summary, ItemFailure):
            run.notes.append(f"run summaries failed: {summary}")
            run.status = "failed"
        else:
            run.runs_summarised, run.experiments_completed = summary
        log.info(
            "%s: %s, %d hour and %d day buckets, %d rollups written, alerts +%d/-%d",
            run.organization,
            run.status,
            run.hour_buckets,
            run.day_buckets,
            run.rollups_written,
            run.alerts_opened,
            run.alerts_resolved,
        )
        results.append(run.to_json())
    # every organization was attempted; a failed one still fails the run, so Prefect notifies and --watch exits 1
    return finish_per_organization(
        results,
        notes,
        error=AggregationFailed,
        what="aggregation",
        key="aggregate-metrics",
        description="Metric aggregation per organization",
        not_in_table=("notes",),
    )
