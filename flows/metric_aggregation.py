"""Flow `aggregate-metrics`: exact hourly and daily rollups of monitoring points, metric alerts, run summaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

from core.errors import AggregationFailed
from flows.runtime import call, expected_outcomes, logger, map_calls, publish_table
from tasks.metrics.service import OrganizationRun
from tasks.metrics.tasks import evaluate_alerts, roll_up_organization, summarise_experiments
from tasks.shared.organizations import list_organizations


def _run_name() -> str:
    from prefect.runtime import flow_run

    org = flow_run.parameters.get("organization") or "all-organizations"
    return f"aggregate-metrics-{org}"


@flow(name="aggregate-metrics", flow_run_name=_run_name, log_prints=False, validate_parameters=True)
@expected_outcomes
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
    runs: list[OrganizationRun | BaseException] = map_calls(roll_up_organization, orgs, since)
    alerts = map_calls(evaluate_alerts, orgs)
    summaries = map_calls(summarise_experiments, orgs)
    results = []
    failures = []
    for org, run, alert, summary in zip(orgs, runs, alerts, summaries, strict=True):
        if isinstance(run, BaseException):
            run = OrganizationRun(organization=org[1], status="failed", notes=[f"roll-up failed: {run}"])
        if isinstance(alert, BaseException):
            run.notes.append(f"alerts failed: {alert}")
            run.status = "failed"
        else:
            run.alerts_opened, run.alerts_resolved, alert_notes = alert
            run.notes += alert_notes
        if isinstance(summary, BaseException):
            run.notes.append(f"run summaries failed: {summary}")
            run.status = "failed"
        else:
            run.runs_summarised, run.experiments_completed = summary
        if run.status == "failed":
            failures.append(run.organization)
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
    publish_table(
        [{k: v for k, v in r.items() if k != "notes"} for r in results],
        key="aggregate-metrics",
        description="Metric aggregation per organization",
    )
    summary = {"organizations": results, "notes": notes, "failed": failures}
    if failures:
        # every organization was attempted; the run still fails so Prefect notifies and --watch exits non-zero
        raise AggregationFailed(f"aggregation failed for {', '.join(failures)}", summary)
    return summary
