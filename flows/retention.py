"""Flow `enforce-retention`: archive, verify, then delete what every organization's policy lets go."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from prefect.runtime import flow_run
from pydantic import Field

from core.errors import InvalidInput
from flows.runtime import call, control_flow, logger, publish_markdown, publish_table
from tasks.retention.maintenance import run_lock
from tasks.retention.rules import OrgReport, table_rows
from tasks.retention.tasks import (
    authenticate_retention_run,
    authorize_retention_run,
    enforce_organization,
    list_retention_plans,
)

MAX_BATCH = 100_000


def _run_name() -> str:
    params = flow_run.parameters or {}
    scope = params.get("organization") or "all-orgs"
    mode = "dry-run" if params.get("dry_run") else "enforce"
    return f"retention-{scope}-{mode}-{datetime.now(UTC):%Y%m%d-%H%M}"


@control_flow(name="enforce-retention", flow_run_name=_run_name)
def enforce_retention(
    organization: Annotated[str | None, Field(description="Only this organization (slug); default: all")] = None,
    dry_run: Annotated[bool, Field(description="Report what would go, per organization and category")] = False,
    batch_size: Annotated[int, Field(description="Rows per delete transaction", ge=1, le=MAX_BATCH)] = 5_000,
    as_of: Annotated[datetime | None, Field(description="Apply the policy as at this time (default: now)")] = None,
    actor: Annotated[str | None, Field(description="E-mail of a user running it on demand; none: the system")] = None,
    on_demand: Annotated[
        bool, Field(description="Run as the caller (MLOPS_API_KEY or actor), not as the scheduler")
    ] = False,
) -> dict[str, Any]:
    """Enforce the retention policy of every live organization (or one), one organization at a time.

    Audit logs older than the policy are archived per month to the artifact store as Parquet with a manifest,
    read back and verified, then deleted in bounded batches; raw monitoring goes where its rollups are
    complete; old rollups, soft-deleted rows past their grace period, retired artifacts and old notifications
    go too. Two runs never overlap (an advisory lock). A real run writes one audit row per organization and
    alerts (with an outbox event) only when something failed; a dry run changes nothing.

    Args:
        organization: slug of the only organization to enforce; None enforces every live organization.
        dry_run: count what would be archived or deleted, per organization and category, and change nothing.
        batch_size: rows deleted per transaction (1 to 100000): smaller keeps each lock shorter.
        as_of: the time the policy is applied at (timezone-aware; default now), for backfills and tests.
        actor: e-mail of the user running it on demand (or MLOPS_API_KEY); that principal needs the
            `retention.run` permission in `organization`. None: the system, as the schedule runs it.
        on_demand: act as the caller (MLOPS_API_KEY, or `actor`), as `mlops retention` does; a scheduled run
            (False, no actor) acts as the system even when the worker's environment holds an API key.

    Returns:
        {"dry_run", "organizations": [per-organization report], "failed": count of organizations with a failure}
    """
    log = logger()  # batch_size's bounds are its Field's, checked before the run starts (flows.runtime)
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInput("as_of must carry a timezone (e.g. 2026-01-01T03:00:00+00:00)")
    now = as_of or datetime.now(UTC)
    principal = call(authenticate_retention_run, organization, actor, on_demand)
    with run_lock():
        plans = call(list_retention_plans, organization)
        if principal is not None:
            call(authorize_retention_run, principal, organization)
        reports: list[OrgReport] = []
        for plan in plans:  # one organization at a time: retention is I/O-heavy and must not starve writers
            report = call(enforce_organization, plan, now, dry_run, batch_size, principal)
            (log.warning if report.failures else log.info)(
                "%s: %s%s", plan.slug, report.status, f" ({'; '.join(report.failures)})" if report.failures else ""
            )
            reports.append(report)
    rows = table_rows(reports)
    publish_table(
        rows,
        key="retention-dry-run" if dry_run else "retention",
        description=f"Retention {'dry run' if dry_run else 'run'} as of {now.isoformat(timespec='seconds')}",
    )
    publish_markdown(_summary(reports, dry_run), key="retention-summary", description="Retention run")
    return {
        "dry_run": dry_run,
        "as_of": now.isoformat(),
        "organizations": [r.to_json() for r in reports],
        "failed": sum(1 for r in reports if r.status != "ok"),
    }


def _summary(reports: list[OrgReport], dry_run: bool) -> str:
    title = "# Retention dry run" if dry_run else "# Retention run"
    lines = [title, "", "| organization | status | removed | archives | failures |", "|---|---|---|---|---|"]
    for r in reports:
        removed = sum(c.count for c in r.categories)
        keys = sum(len(c.archive_keys) for c in r.categories)
        lines.append(f"| {r.organization} | {r.status} | {removed} | {keys} | {'; '.join(r.failures)} |")
    return "\n".join(lines) + "\n"
