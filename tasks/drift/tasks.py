"""The Prefect tasks of drift detection: thin wrappers of `tasks.drift.service`."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from services.access import Principal
from tasks.drift import service
from tasks.drift.rules import DriftOutcome, DriftTarget
from tasks.shared.options import IO_TASK


@task(name="list-drift-targets", **IO_TASK)
def list_targets(
    organization: str | None, deployment: str | None, environment: str | None
) -> tuple[list[DriftTarget], list[str]]:
    """Active deployments with drift configured, and notes about organizations skipped."""
    return service.list_targets(organization, deployment, environment)


@task(name="authorize-drift-run", **IO_TASK)
def authorize_drift_run(principal: Principal, targets: list[DriftTarget]) -> None:
    """An on-demand run: the principal may run drift detection on every target (audited per deployment)."""
    service.authorize_drift_run(principal, targets)


@task(name="detect-deployment-drift", task_run_name="drift-{target.deployment}-{target.environment}", **IO_TASK)
def detect_deployment_drift(
    target: DriftTarget, window: tuple[datetime, datetime] | None, scheduled_at: datetime, actor: Principal | None
) -> DriftOutcome:
    """Analyse one deployment over its window (`failed` outcome on bad configuration or data; TransientError
    raised, so the task retries)."""
    return service.detect_deployment_drift(target, window, scheduled_at, actor)
