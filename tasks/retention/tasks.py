"""The Prefect tasks of retention: thin wrappers of `tasks.retention.service`."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from services.access import Principal
from tasks.retention import service
from tasks.retention.rules import OrgPlan, OrgReport
from tasks.shared.identity import deployment_run
from tasks.shared.options import IO_TASK, ONE_ATTEMPT_TASK


@task(name="list-retention-plans", **IO_TASK)
def list_retention_plans(organization: str | None) -> list[OrgPlan]:
    """The organizations to enforce, each with its policy or the reason it is skipped."""
    return service.plan_organizations(organization)


@task(name="authenticate-retention-run", **IO_TASK)
def authenticate_retention_run(
    organization: str | None, actor: str | None, on_demand: bool = False
) -> Principal | None:
    """The user or API key running retention on demand (in one organization), or None for the system."""
    return service.retention_principal(organization, actor, on_demand, key_only=deployment_run())


@task(name="authorize-retention-run", **IO_TASK)
def authorize_retention_run(principal: Principal, organization: str) -> None:
    """The on-demand principal holds `retention.run` in `organization` (audited)."""
    service.authorize_run(principal, organization)


# No task-level retry: a step that failed after its own retries is reported, and the next daily run resumes it.
@task(name="enforce-organization-retention", task_run_name="retention-{plan.slug}", **ONE_ATTEMPT_TASK)
def enforce_organization(
    plan: OrgPlan, now: datetime, dry_run: bool, batch_size: int, actor: Principal | None = None
) -> OrgReport:
    """Every category of one organization; an audit row, and on failure an alert with its event."""
    return service.enforce_one(plan, now=now, dry_run=dry_run, batch_size=batch_size, actor=actor)
