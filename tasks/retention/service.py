"""Retention's transactions: which organizations to enforce and who may, one organization's run (every category
in turn, then its audit row, and an alert only on failure), restoring an archived month, the archive ledger."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidInput, MlopsError, NotFound, PermissionDenied
from db.queries import retention as q
from services.access import Action, Principal, system_principal
from services.audit import authorize, record_audit
from services.auth import on_demand_principal
from services.outbox import emit_event
from services.storage import open_store
from tasks.retention import archives, data
from tasks.retention.maintenance import retention_owner_session, run_lock
from tasks.retention.rules import (
    CategoryReport,
    OrgPlan,
    OrgReport,
    archive_key,
    cutoffs,
    parse_month,
    parse_policy,
)

_log = logging.getLogger("mlops.retention")


def plan_organizations(organization: str | None) -> list[OrgPlan]:
    """Every live organization (or `organization`) with its validated policy, or the reason it is skipped."""
    with retention_owner_session() as session:
        rows = q.organizations_with_settings(session=session, slug=organization)
    if organization and not rows:
        raise NotFound(f"unknown organization '{organization}'")
    plans = []
    for org_id, slug, settings in rows:
        try:
            plans.append(OrgPlan(org_id, slug, parse_policy(settings)))
        except InvalidInput as exc:
            plans.append(OrgPlan(org_id, slug, None, f"invalid retention policy, organization skipped: {exc}"))
    return plans


def retention_principal(
    organization: str | None, actor: str | None, on_demand: bool, *, key_only: bool
) -> Principal | None:
    """The user or API key running retention on demand (in one organization), or None for the system."""
    if not organization and (actor or on_demand):
        raise InvalidInput("an on-demand retention run names its organization (--org): users act in one")
    principal = on_demand_principal(organization, actor, on_demand, key_only=key_only)
    if principal is not None and principal.organization_slug != organization:
        raise PermissionDenied(f"{principal.display} does not belong to organization '{organization}'")
    return principal


def authorize_run(principal: Principal, organization: str, *, audit_action: str = "retention.enforce") -> None:
    """The on-demand principal holds `retention.run` in `organization` (a refusal is audited as `audit_action`:
    an enforce run, or a restore)."""
    authorize(
        principal,
        Action.RETENTION_RUN,
        what=f"retention of {organization}",
        audit_action=audit_action,
        resource_type="organization",
        resource_id=principal.organization_id,
    )


def enforce_one(plan: OrgPlan, *, now: datetime, dry_run: bool, batch_size: int, actor: Principal | None) -> OrgReport:
    """Apply (or, dry, measure) the organization's policy. Never raises for a failing category: it is reported,
    the other categories still run, and a real run records an alert and an outbox event."""
    report = OrgReport(plan.slug, str(plan.organization_id), dry_run)
    principal = actor or system_principal(plan.organization_id, plan.slug)
    if plan.policy is None:
        report.status, report.error = "skipped", plan.error
        if not dry_run:
            _finish(report, principal, now)
        return report
    policy = plan.policy
    report.policy = {k: v for k, v in vars(policy).items()}
    cut = cutoffs(policy, now)
    org = plan.organization_id
    steps: list[tuple[str, Any]] = [
        ("audit_logs", lambda: [audit_logs(plan, cut.audit_logs, now, dry_run=dry_run, batch_size=batch_size)]),
        ("monitoring_raw", lambda: [data.monitoring_raw(org, cut, dry_run=dry_run)]),
        (
            "monitoring_rollups",
            lambda: [data.monitoring_rollups(org, cut, dry_run=dry_run, batch_size=batch_size)],
        ),
        ("model_artifacts", lambda: [data.model_artifacts(org, cut, policy, principal, dry_run=dry_run)]),
        (
            "deleted_deployments",
            lambda: data.soft_deleted(org, cut, policy, principal, dry_run=dry_run, batch_size=batch_size),
        ),
        ("notification_events", lambda: data.notifications(org, cut, dry_run=dry_run, batch_size=batch_size)),
    ]  # (artifacts before soft-deleted rows: a model is purged only once its artifacts are)
    for name, step in steps:
        started = time.perf_counter()
        try:
            produced = step()
        except Exception as exc:  # reported per category; the run goes on with the others
            # an expected failure is its one line; anything else (a bug) keeps its traceback in the log
            _log.warning("retention %s/%s failed: %s", plan.slug, name, exc, exc_info=not isinstance(exc, MlopsError))
            produced = [report.category(name)]
            produced[0].error = _one_line(exc)
        else:
            report.categories.extend(produced)
        for category in produced:
            category.seconds = round((time.perf_counter() - started) / len(produced), 3)
    if report.failures:
        report.status = "failed"
    if not dry_run:
        _finish(report, principal, now)
    return report


def audit_logs(plan: OrgPlan, cutoff: datetime, now: datetime, *, dry_run: bool, batch_size: int) -> CategoryReport:
    """Archive, verify and delete every month with expired audit rows; restored months on hold are kept."""
    report = CategoryReport("audit_logs")
    with retention_owner_session() as session:
        months = q.expired_audit_months(session=session, organization_id=plan.organization_id, cutoff=cutoff)
        held = q.held_periods(session=session, organization_id=plan.organization_id, category="audit_logs", now=now)
    for period, count in months:
        if period in held:
            report.held += count
            report.note = f"restored month(s) on hold: {', '.join(sorted(held))}"
            continue
        if dry_run:
            report.count += count
            report.archive_keys.append(archive_key("audit_logs", plan.slug, period))
            continue
        outcome = archives.archive_month(
            open_store(),
            organization_id=plan.organization_id,
            slug=plan.slug,
            period=period,
            cutoff=cutoff,
            batch_size=batch_size,
        )
        report.count += outcome.deleted
        report.archive_keys.append(outcome.key)
    return report


def _finish(report: OrgReport, principal: Principal, now: datetime) -> None:
    """The run's audit row, and on failure an alert and its outbox event, in one transaction."""
    details = {
        "status": report.status,
        "counts": {c.category: c.count for c in report.categories},
        "held": {c.category: c.held for c in report.categories if c.held},
        "archive_keys": [k for c in report.categories for k in c.archive_keys],
        "failures": report.failures,
        "policy": report.policy,
    }
    with retention_owner_session() as session:
        report.audit_id = str(
            record_audit(
                session,
                principal=principal,
                action="retention.enforce",
                resource_type="organization",
                resource_id=principal.organization_id,
                details=details,
            )
        )
        if report.failures:
            message = "; ".join(report.failures)
            alert = q.open_failure_alert(
                session=session,
                organization_id=principal.organization_id,
                title=f"Retention failed for {report.organization}",
                message=message,
            )
            report.alert_id = str(alert)
            emit_event(
                session,
                organization_id=principal.organization_id,
                trigger_type="alert",
                event_type="retention.failed",
                severity="high",
                payload={"alert_id": str(alert), "organization": report.organization, "failures": report.failures},
                dedup_key=f"retention.failed:{report.audit_id}",
            )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def restore_audit_month(organization: str, period: str, *, keep_days: int, principal: Principal | None) -> dict:
    """`mlops retention restore audit_logs`: load an archived month back (idempotent), hold it `keep_days`
    days so retention does not delete it again meanwhile, and audit the restore. Runs under the run lock."""
    parse_month(period)
    if not 1 <= keep_days <= 3650:
        raise InvalidInput(f"--keep-days must be between 1 and 3650, got {keep_days}")
    with retention_owner_session() as session:
        rows = q.organizations_with_settings(session=session, slug=organization)
    if not rows:
        raise NotFound(f"unknown organization '{organization}'")
    org_id = rows[0][0]
    actor = principal or system_principal(org_id, organization)
    with run_lock():
        outcome = archives.restore_month(
            open_store(),
            organization_id=org_id,
            slug=organization,
            period=period,
            hold_until=datetime.now(UTC) + timedelta(days=keep_days),
        )
        result = {
            "organization": organization,
            "period": period,
            "archive": outcome.key,
            "archived_rows": outcome.archived_rows,
            "inserted": outcome.inserted,
            "already_present": outcome.already_present,
            "references_gone": outcome.references_gone,
            "held_until": outcome.held_until.isoformat(),
        }
        with retention_owner_session() as session:
            record_audit(
                session,
                principal=actor,
                action="retention.restore",
                resource_type="organization",
                resource_id=org_id,
                details={"category": "audit_logs", **result},
            )
    return result


def list_archive_records(organization: str | None) -> list[dict]:
    """The archive ledger, for `mlops retention archives`."""
    with retention_owner_session() as session:
        return [asdict(r) for r in q.list_archives(session=session, slug=organization)]
