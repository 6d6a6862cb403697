"""Flow `detect-drift`: every active deployment with drift monitoring, over the schedule's last interval."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from prefect.runtime import flow_run
from pydantic import Field

from core.errors import PartialFailure
from flows.runtime import (
    ItemFailure,
    call,
    control_flow,
    in_flow_run,
    logger,
    map_calls,
    publish_markdown,
    publish_table,
    run_name,
)
from tasks.drift.rules import DriftOutcome, explicit_window
from tasks.drift.tasks import authorize_drift_run, detect_deployment_drift, list_targets
from tasks.shared.identity import authenticate_on_demand


@control_flow(name="detect-drift", flow_run_name=run_name("detect-drift-{organization}-{deployment}-{environment}"))
def detect_drift(
    organization: Annotated[str | None, Field(description="Only this organization (slug)")] = None,
    deployment: Annotated[str | None, Field(description="Only this deployment: ORG/PROJECT/DEPLOYMENT")] = None,
    environment: Annotated[str | None, Field(description="Environment of --deployment")] = None,
    start: Annotated[datetime | None, Field(description="Window start (default: the last interval)")] = None,
    end: Annotated[datetime | None, Field(description="Window end (default: the run's scheduled time)")] = None,
    actor: Annotated[str | None, Field(description="E-mail of a user running it on demand; none: the system")] = None,
    on_demand: Annotated[
        bool, Field(description="Run as the caller (MLOPS_API_KEY or actor), not as the scheduler")
    ] = False,
) -> dict[str, Any]:
    """Compare each deployment's logged inputs over the window with its reference dataset, column by column
    (Evidently's default tests), then write the report, the HTML page, and on drift the alert and its event.
    When a deployment could not be analysed, the others are still done, then the run fails (PartialFailure,
    carrying the summary).

    A scheduled run (no actor, not `on_demand`) acts as the system for every organization, whatever API key
    the worker's environment holds; an on-demand run (`mlops drift`) acts as its caller and is authorized."""
    log = logger()
    window = explicit_window(start, end)
    scheduled = _scheduled_time()
    org = organization or (deployment.split("/")[0] if deployment else None)
    principal = call(authenticate_on_demand, org, actor, on_demand)
    targets, notes = call(list_targets, organization, deployment, environment)
    for note in notes:
        log.info(note)
    if principal is not None:
        call(authorize_drift_run, principal, targets)
    log.info("analysing %d deployment(s)", len(targets))
    results = map_calls(detect_deployment_drift, targets, window, scheduled, principal)  # MLOPS_TASK_CONCURRENCY
    outcomes: list[DriftOutcome] = [
        DriftOutcome(t.name, "failed", f"gave up after retries: {r}") if isinstance(r, ItemFailure) else r
        for t, r in zip(targets, results, strict=True)
    ]
    for outcome in outcomes:
        (log.warning if outcome.status in ("failed", "incomplete") else log.info)(
            "%s: %s — %s", outcome.deployment, outcome.status, outcome.message
        )
        if outcome.columns:
            publish_table(
                [
                    {k: c[k] for k in ("column", "method", "score", "threshold", "drifted", "error")}
                    for c in outcome.columns
                ],
                key=f"drift-{outcome.deployment}",
                description=f"Data drift of {outcome.deployment}, {outcome.window[0]} to {outcome.window[1]}: "
                f"{outcome.message}. HTML report: {outcome.report_uri}",
            )
    publish_markdown(_summary(outcomes, notes), key="drift-summary", description="Drift detection run")
    summary = {
        "deployments": len(outcomes),
        "drift_detected": sum(1 for o in outcomes if o.drift_detected),
        "failed": sum(1 for o in outcomes if o.status == "failed"),
        "incomplete": sum(1 for o in outcomes if o.status == "incomplete"),
        "skipped_organizations": notes,
        "outcomes": [o.to_json() for o in outcomes],
    }
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:  # after every other deployment was analysed: the run ends Failed, so Prefect notifies
        raise PartialFailure(
            f"{len(failed)} of {len(outcomes)} deployment(s) could not be analysed: "
            + "; ".join(f"{o.deployment}: {o.message}" for o in failed),
            summary,
        )
    return summary


def _scheduled_time() -> datetime:
    """The flow run's scheduled start (Prefect), or now for a run outside Prefect."""
    if in_flow_run():
        scheduled = flow_run.scheduled_start_time
        if scheduled is not None:
            return datetime.fromtimestamp(scheduled.timestamp(), tz=UTC)
    return datetime.now(UTC)


def _summary(outcomes: list[DriftOutcome], notes: list[str]) -> str:
    lines = ["# Drift detection", "", "| deployment | status | result | report |", "|---|---|---|---|"]
    for o in outcomes:
        link = f"`{o.report_uri}`" if o.report_uri else ""
        lines.append(f"| {o.deployment} | {o.status} | {o.message} | {link} |")
    if not outcomes:
        lines.append("| (no deployment has drift monitoring configured) | | | |")
    lines += [f"\n_{note}_" for note in notes]
    return "\n".join(lines) + "\n"
