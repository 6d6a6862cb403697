"""The Prefect tasks of metric aggregation: thin wrappers of `tasks.metrics.service`, one organization each."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from tasks.metrics import service
from tasks.metrics.service import OrganizationRun
from tasks.shared.options import IO_TASK
from tasks.shared.organizations import Organization


@task(name="roll-up-organization", **IO_TASK)
def roll_up_organization(org: Organization, since: datetime | None) -> OrganizationRun:
    """Backfill the organization once (or from `since`), then recompute every invalidated bucket."""
    return service.roll_up_organization(org, since)


@task(name="evaluate-metric-alerts", **IO_TASK)
def evaluate_alerts(org: Organization) -> tuple[int, int, list[str]]:
    """Open, update or resolve each deployment's metric alerts: (opened, resolved, notes)."""
    return service.evaluate_alerts(org)


@task(name="summarise-experiments", **IO_TASK)
def summarise_experiments(org: Organization) -> tuple[int, int]:
    """Summarise ended runs and complete finished experiments: (runs summarised, experiments completed)."""
    return service.summarise_experiments(org)
