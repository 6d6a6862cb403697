"""`mlops aggregate` and `mlops metrics`: roll monitoring points up, read the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from core.errors import InvalidInput
from mlops.cli.common import (
    AsOption,
    JsonOption,
    OrgOption,
    echo_json,
    parse_datetime,
    parse_deployment_ref,
    principal_for,
)


def aggregate(
    organization: OrgOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Recompute every bucket from this time (ISO 8601).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Roll new monitoring points up into hourly and daily rollups (flow aggregate-metrics), raise or resolve
    metric alerts and summarise finished experiment runs. Runs as the scheduler does; exit 1 when an
    organization failed."""
    from core.errors import AggregationFailed
    from flows.metric_aggregation import aggregate_metrics
    from flows.runtime import run_flow

    start = parse_datetime(since, "--since") if since else None
    try:
        summary = run_flow(aggregate_metrics, organization=organization, since=start)
    except AggregationFailed as failed:
        summary = failed.summary
        _print(summary, as_json)
        raise
    _print(summary, as_json)


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        echo_json(summary)
        return
    for org in summary["organizations"]:
        typer.echo(
            f"{org['organization']}: {org['status']}; {org['hour_buckets']} hour and {org['day_buckets']} day "
            f"bucket(s) recomputed, {org['rollups_written']} rollup(s) written"
            + (f" (backfill: {org['backfilled_windows']} window(s))" if org["backfilled_windows"] else "")
            + f"; alerts opened {org['alerts_opened']}, resolved {org['alerts_resolved']}; "
            f"runs summarised {org['runs_summarised']}, experiments completed {org['experiments_completed']}"
        )
        for note in org["notes"]:
            typer.echo(f"  note: {note}")
    for note in summary["notes"]:
        typer.echo(f"note: {note}")
    if not summary["organizations"]:
        typer.echo("no organization to aggregate")


def metrics(
    deployment_ref: Annotated[str, typer.Argument(metavar="ORG/PROJECT/DEPLOYMENT", help="The deployment.")],
    environment: Annotated[str, typer.Option("--env", help="development, staging or production.")],
    metric: Annotated[str | None, typer.Option("--metric", help="Only this metric.")] = None,
    granularity: Annotated[str, typer.Option("--granularity", help="hour or day.")] = "hour",
    since: Annotated[
        str | None, typer.Option("--since", help="From this time, ISO 8601 (default: 24 h or 30 d).")
    ] = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """A deployment's metric rollups (raw points where no rollup exists yet, marked `raw`)."""
    from tasks.metrics.service import read_metrics

    org, project, deployment = parse_deployment_ref(deployment_ref, environment)
    if granularity not in ("hour", "day"):
        raise InvalidInput(f"--granularity must be hour or day, got '{granularity}'")
    if metric is not None and not 0 < len(metric) <= 100:
        raise InvalidInput("--metric must be 1-100 characters")
    default = timedelta(hours=24) if granularity == "hour" else timedelta(days=30)
    start = parse_datetime(since, "--since") if since else datetime.now(UTC) - default
    rows = read_metrics(
        principal_for(org, as_email),
        project=project,
        deployment=deployment,
        environment=environment,
        metric=metric,
        granularity=granularity,
        since=start,
    )
    if as_json:
        echo_json([r.to_json() for r in rows])
        return
    if not rows:
        typer.echo(f"no points for {deployment_ref} ({environment}) since {start:%Y-%m-%d %H:%M} UTC")
        return
    typer.echo(
        f"{'metric':<18} {'bucket (UTC)':<17} {'n':>6} {'mean':>10} {'p50':>10} {'p95':>10} {'p99':>10} "
        f"{'max':>10} {'anom':>4}  source"
    )
    for r in rows:
        typer.echo(
            f"{r.metric_name:<18} {r.bucket_start.astimezone(UTC):%Y-%m-%d %H:%M} {r.sample_count:>6} "
            f"{r.value_mean:>10.4g} {r.p50:>10.4g} {r.p95:>10.4g} {r.p99:>10.4g} {r.value_max:>10.4g} "
            f"{r.anomaly_count:>4}  {r.source}"
        )
