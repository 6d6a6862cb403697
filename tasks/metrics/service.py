"""Metric aggregation's transactions: roll up an organization's new points, raise or resolve its metric alerts,
summarise finished experiment runs, and read a deployment's series.

Each function works for one organization in short transactions of its own; the flow runs them per organization
through `tasks.metrics.tasks`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidInput
from core.vocabulary import Severity, TriggerType
from db.queries import metrics as q
from db.session import session_scope
from services.access import Action, Principal, require, system_principal
from services.audit import record_change
from services.outbox import emit_event
from tasks.metrics.rules import (
    AlertPolicy,
    AlertRule,
    alert_policy,
    backfill_windows,
    day_keys,
    judge,
    lower_is_better_pattern,
    statistic_of,
)

CLAIM_BATCH = 5000  # invalidations claimed per transaction


@dataclass
class OrganizationRun:
    """What one aggregation run did for one organization."""

    organization: str
    status: str = "done"  # done | busy (another run holds the organization) | failed
    backfilled_windows: int = 0
    hour_buckets: int = 0
    day_buckets: int = 0
    rollups_written: int = 0
    alerts_opened: int = 0
    alerts_resolved: int = 0
    runs_summarised: int = 0
    experiments_completed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def roll_up_organization(org: tuple[uuid.UUID, str], since: datetime | None) -> OrganizationRun:
    """Backfill the organization once (or from `since`), then recompute every invalidated bucket."""
    org_id, slug = org
    run = OrganizationRun(organization=slug)
    with session_scope(org_id) as session:
        backfilled = q.aggregation_state(session=session, organization_id=org_id) is not None
        first, last = q.raw_time_range(session=session, organization_id=org_id)
    if since is not None or not backfilled:
        if first is not None and last is not None:
            start = max(first, since) if since is not None else first
            for window in backfill_windows(start, last):
                with session_scope(org_id) as session:
                    if not q.try_lock_organization(session=session, organization_id=org_id):
                        run.status = "busy"
                        return run
                    q.set_work_mem(session=session)
                    for granularity in ("hour", "day"):
                        run.rollups_written += q.backfill_window(
                            session=session,
                            organization_id=org_id,
                            granularity=granularity,
                            start=window[0],
                            end=window[1],
                        )
                run.backfilled_windows += 1
        with session_scope(org_id) as session:
            q.mark_run(session=session, organization_id=org_id, backfilled=True)
    while True:
        with session_scope(org_id) as session:
            if not q.try_lock_organization(session=session, organization_id=org_id):
                run.status = "busy"
                return run
            q.set_work_mem(session=session)
            hours = q.claim_invalidations(session=session, organization_id=org_id, limit=CLAIM_BATCH)
            if not hours:
                q.mark_run(session=session, organization_id=org_id, backfilled=True)
                return run
            days = day_keys(hours)
            run.rollups_written += q.recompute_buckets(
                session=session, organization_id=org_id, granularity="hour", keys=hours
            )
            run.rollups_written += q.recompute_buckets(
                session=session, organization_id=org_id, granularity="day", keys=days
            )
            run.hour_buckets += len(hours)
            run.day_buckets += len(days)


def evaluate_alerts(org: tuple[uuid.UUID, str]) -> tuple[int, int, list[str]]:
    """Open, update or resolve each deployment's metric alerts from its latest hourly rollups.

    Returns (opened, resolved, notes); a deployment with an invalid alert configuration is skipped with a note.
    """
    org_id, slug = org
    principal = system_principal(org_id, slug)
    opened = resolved = 0
    notes: list[str] = []
    with session_scope(org_id) as session:
        deployments = q.live_deployments(session=session)
        policies: dict[uuid.UUID, AlertPolicy] = {}
        for d in deployments:
            try:
                policies[d.id] = alert_policy(d.config)
            except InvalidInput as exc:
                notes.append(f"{d.name} ({d.environment}): alert rules skipped: {exc}")
        metrics = sorted({r.metric for p in policies.values() for r in p.rules})
        horizon = max([max(r.buckets, p.resolve_after) for p in policies.values() for r in p.rules] or [1])
        rows = q.recent_hourly_rollups(session=session, metrics=metrics, hours=horizon + 1) if metrics else []
    series: dict[tuple[uuid.UUID, str], list[q.RollupRow]] = {}
    for row in rows:
        series.setdefault((row.deployment_id, row.metric_name), []).append(row)
    for d in deployments:
        policy = policies.get(d.id)
        if policy is None:
            continue
        for rule in policy.rules:
            buckets = series.get((d.id, rule.metric), [])
            verdict = judge(rule, policy.resolve_after, buckets)
            if verdict == "unknown":
                continue
            with session_scope(org_id) as session:
                change = _apply_verdict(session, principal, d, rule, verdict, buckets)
            opened += change == "opened"
            resolved += change == "resolved"
    return opened, resolved, notes


def _apply_verdict(session, principal, deployment: q.MonitoredDeployment, rule: AlertRule, verdict: str, buckets):
    """One alert change, its audit row and its event, in the caller's transaction."""
    current = q.unresolved_alert(session=session, deployment_id=deployment.id, alert_type=rule.alert_type)
    latest = sorted(buckets, key=lambda b: b.bucket_start)[-1]
    value = statistic_of(latest, rule.statistic)
    message = (
        f"{deployment.name} ({deployment.environment}): {rule.describe()}; latest {rule.statistic} {value:.6g} "
        f"in the hour from {latest.bucket_start.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    payload = {
        "deployment": deployment.name,
        "environment": deployment.environment,
        "alert_type": rule.alert_type,
        "metric": rule.metric,
        "statistic": rule.statistic,
        "value": value,
        "limit": rule.maximum if rule.maximum is not None else rule.minimum,
    }
    if verdict == "breach":
        if current is not None:  # still breaching: keep it (acknowledged stays acknowledged), refresh the message
            q.update_alert_message(session=session, alert_id=current.id, message=message)
            return "updated"
        alert_id = q.open_alert(
            session=session,
            organization_id=principal.organization_id,
            deployment_id=deployment.id,
            alert_type=rule.alert_type,
            severity=rule.severity,
            title=f"{rule.alert_type.replace('_', ' ')}: {deployment.name} ({deployment.environment})",
            message=message,
        )
        if alert_id is None:
            return "raced"
        action, event = "alert.open", "alert.opened"
    else:
        if current is None:
            return "none"
        alert_id = current.id
        q.resolve_alert(session=session, alert_id=alert_id)
        action, event = "alert.resolve", "alert.resolved"
    record_change(
        session,
        principal=principal,
        action=action,
        resource_type="alert",
        resource_id=alert_id,
        details={**payload, "message": message},
        trigger_type=TriggerType.ALERT,
        event_type=event,
        payload={**payload, "alert_id": str(alert_id), "message": message},
        severity=rule.severity if verdict == "breach" else Severity.INFO,
        project_id=deployment.project_id,
        deployment_id=deployment.id,
        dedup_key=f"{event}:{alert_id}",
    )
    return "opened" if verdict == "breach" else "resolved"


def summarise_experiments(org: tuple[uuid.UUID, str]) -> tuple[int, int]:
    """Summarise ended runs and complete finished experiments (with an `experiment_complete` event each)."""
    org_id, _ = org
    with session_scope(org_id) as session:
        runs = q.summarise_ended_runs(session=session, lower_is_better=lower_is_better_pattern())
        finished = q.complete_finished_experiments(session=session)
        for e in finished:
            emit_event(
                session,
                organization_id=org_id,
                trigger_type="experiment_complete",
                event_type=f"experiment.{e.status}",
                severity="info",
                project_id=e.project_id,
                payload={
                    "experiment": e.name,
                    "experiment_id": str(e.id),
                    "status": e.status,
                    "runs": e.runs,
                    "completed_runs": e.completed_runs,
                },
                dedup_key=f"experiment_complete:{e.id}",
            )
    return runs, len(finished)


def read_metrics(
    principal: Principal,
    *,
    project: str,
    deployment: str,
    environment: str,
    metric: str | None,
    granularity: str,
    since: datetime,
) -> list[q.RollupRow]:
    """A deployment's rollups since `since` (raw points where no rollup exists yet), for a reader of the project."""
    with session_scope(principal.organization_id) as session:
        deployment_id, project_id = q.deployment_by_ref(
            session=session, project=project, name=deployment, environment=environment
        )
        require(principal, Action.MODEL_READ, project_id, what=f"{project}/{deployment}")
        return q.read_series(
            session=session, deployment_id=deployment_id, granularity=granularity, since=since, metric=metric
        )
