"""Rollout, rollback and terminate: the one-change-at-a-time lock and every state change of a deployment.

Each state change is one transaction that keeps the deployment, its history, the registry stages and their
history, audit rows and outbox events consistent. The unfinished (`in_progress`) history row is the rollout's
lock: taken under the deployment's row lock, unique per deployment (an index), renewed per step, and recovered
by the next rollout or rollback once its lease has expired (its process died). Planning lives in
`tasks.rollout.plan`, platform steps in `tasks.rollout.drive`, the Prefect tasks in `tasks.rollout.tasks`.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from core.vocabulary import Severity, TriggerType
from db.models import Deployment
from db.queries import rollout as q
from db.session import session_scope
from services.access import Action, Principal, require
from services.audit import record_audit, record_change
from services.outbox import emit_event
from services.serving import backend_for
from tasks.registry.service import restore_registry
from tasks.rollout.drive import drive, run_step
from tasks.rollout.plan import Change, ChangeRequest, resolve_deployment
from tasks.rollout.rules import StepResult, Verdict, step_lease_seconds, traffic_split

LOCK_TIMEOUT = "5s"


# --- the state changes: one transaction each ----------------------------------------------------------------


def _performer(principal: Principal, deployment: Deployment) -> uuid.UUID:
    return principal.user_id or deployment.created_by


def _locked(session: Session, change: Change) -> Deployment:
    """The deployment's row lock; not granted within LOCK_TIMEOUT, the transaction ends in a Conflict naming the
    deployment (db.errors, with the session's `what`)."""
    q.set_lock_timeout(session=session, timeout=LOCK_TIMEOUT)
    return q.deployment_by_id(session=session, deployment_id=change.deployment_id, lock=True)


def begin(principal: Principal, change: Change) -> Change:
    """Take the deployment: under its row lock, refuse when another change is unfinished (recover it when its
    lease expired), then record the `in_progress` history row and the deployment's new status."""
    # a rival run inserting its unfinished row first ends this one in a Conflict (db.errors: one unfinished per
    # deployment)
    with session_scope(principal.organization_id, what=change.label) as session:
        deployment = _locked(session, change)
        recovered = _recover_stale(session, principal, change)
        details = {
            "kind": change.kind,
            "target_version": change.target.model_version,
            "previous_version": change.previous.model_version if change.previous else None,
            "previous_version_id": change.previous.model_version_id if change.previous else None,
            "steps": list(change.config.steps) if change.config and change.kind == "rollout" else [],
            "backend": change.config.backend if change.config else "registry-only",
            "reason": change.reason,
            "forced": change.forced,
            "promotion": change.promotion,
        }
        history_id = q.insert_history(
            session=session,
            deployment_id=change.deployment_id,
            model_version_id=uuid.UUID(change.target.model_version_id),
            action=change.action,
            status="in_progress",
            performed_by=_performer(principal, deployment),
            details=details,
            lease_seconds=step_lease_seconds(change.config),
        )
        status = "terminating" if change.kind == "terminate" else "deploying"
        q.update_deployment(session=session, deployment_id=change.deployment_id, status=status)
    return replace(change, history_id=history_id, recovered=tuple(recovered))


def _recover_stale(session: Session, principal: Principal, change: Change) -> list[str]:
    row = q.unfinished(session=session, deployment_id=change.deployment_id)
    if row is None:
        return []
    if not row["stale"]:
        version = q.version_with_model(session=session, version_id=row["model_version_id"])[0].version
        raise Conflict(
            f"{change.label} is already in a {row['action']} of {version} (started "
            f"{row['started_at']:%Y-%m-%d %H:%M:%S} UTC by {row['performed_by'] or 'unknown'}, lease until "
            f"{row['expires_at']:%H:%M:%S}); wait for it to finish"
        )
    note = (
        f"recovered an abandoned {row['action']} (its run stopped; lease expired "
        f"{row['expires_at']:%Y-%m-%d %H:%M:%S} UTC)"
    )
    q.finish_history(
        session=session,
        history_id=row["id"],
        status="failed",
        error_message=f"abandoned: its run stopped before finishing; recovered by a {change.kind}",
    )
    record_audit(
        session,
        principal=principal,
        action="deployment.recover",
        resource_type="deployment",
        resource_id=change.deployment_id,
        details={"history_id": str(row["id"]), "by": change.kind},
    )
    promotion = (row["details"] or {}).get("promotion")
    rerun = change.kind == "rollout" and str(row["model_version_id"]) == change.target.model_version_id
    if promotion and not rerun and change.kind == "rollout":
        # a different version now replaces the abandoned promoted one: put the registry back first
        restore_registry(
            session,
            principal,
            from_version_id=row["model_version_id"],
            promotion=promotion,
            reason=f"rollout {row['id']} to {change.label} was abandoned",
        )
    return [note]


def _payload(change: Change, principal: Principal, **extra: Any) -> dict[str, Any]:
    return {
        "organization": change.organization,
        "deployment": change.label,
        "environment": change.environment,
        "version": change.target.model_version,
        "previous_version": change.previous.model_version if change.previous else None,
        "actor": principal.display,
        **extra,
    }


def complete(principal: Principal, change: Change, steps: list[StepResult]) -> dict[str, Any]:
    """Record a change that succeeded: the deployment's new state, history `completed`, audit and event (and,
    for a rollback in production, the registry following the version now served)."""
    with session_scope(principal.organization_id, what=change.label) as session:
        _locked(session, change)
        finished = q.finish_history(
            session=session,
            history_id=change.history_id,
            status="completed",
            details={"results": [s.to_json() for s in steps]},
        )
        if not finished:
            raise Conflict(f"{change.label}: this run's lease was taken over by another run; nothing recorded")
        restored: list[str] = []
        if change.kind == "terminate":
            q.update_deployment(
                session=session, deployment_id=change.deployment_id, status="inactive", terminated_at=q.now()
            )
        else:
            q.update_deployment(
                session=session,
                deployment_id=change.deployment_id,
                status="active",
                model_version_id=uuid.UUID(change.target.model_version_id),
                deployed_at=q.now(),
                terminated_at=None,
            )
        moved_away = change.previous and change.previous.model_version_id != change.target.model_version_id
        if change.kind == "rollback" and change.environment == "production" and moved_away:
            restored = restore_registry(
                session,
                principal,
                from_version_id=uuid.UUID(change.previous.model_version_id),
                to_version_id=uuid.UUID(change.target.model_version_id),
                reason=f"rollback of {change.label}: {change.reason}",
            )
        verb = {"rollout": "rolled_out", "rollback": "rolled_back", "terminate": "terminated"}[change.kind]
        summary = _payload(
            change,
            principal,
            status="completed",
            kind=change.kind,
            action=change.action,
            driven=change.config is not None,
            steps=[s.to_json() for s in steps],
            reason=change.reason,
            forced=change.forced,
            registry_restored=restored,
            recovered=list(change.recovered),
        )
        record_change(
            session,
            principal=principal,
            action=f"deployment.{change.kind}",
            resource_type="deployment",
            resource_id=change.deployment_id,
            details=summary,
            trigger_type=TriggerType.DEPLOYMENT,
            event_type=f"deployment.{verb}",
            project_id=change.project_id,
            deployment_id=change.deployment_id,
            dedup_key=f"deployment-history:{change.history_id}",
        )
    return summary


def record_failure(
    principal: Principal, change: Change, steps: list[StepResult], error: str, revert: Verdict | None
) -> dict[str, Any]:
    """Record a failed change in one transaction: the change's row `failed` with its error; for a rollout, a
    `rollback` row (completed when the platform serves the previous version again) and the deployment back on
    it, the registry restored when the rollout came from a promotion; a `high` alert; audit; events."""
    with session_scope(principal.organization_id, what=change.label) as session:
        deployment = _locked(session, change)
        finished = q.finish_history(
            session=session,
            history_id=change.history_id,
            status="failed",
            error_message=error,
            details={"results": [s.to_json() for s in steps]},
        )
        if not finished:  # another run presumed this one dead and owns the deployment now
            raise Conflict(f"{change.label}: this run's lease was taken over by another run ({error})")
        reverted = revert is None or revert.ok
        back_to = change.previous if change.kind == "rollout" else None
        rollback_id = None
        if back_to is not None:
            rollback_id = q.insert_history(
                session=session,
                deployment_id=change.deployment_id,
                model_version_id=uuid.UUID(back_to.model_version_id),
                action="rollback",
                status="completed" if reverted else "failed",
                performed_by=_performer(principal, deployment),
                details={"automatic": True, "rollback_of": str(change.history_id), "reason": error},
                error_message=None if reverted else f"the platform did not come back: {_detail(revert)}",
            )
        # a failed rollback or terminate leaves the platform in an unknown state: `failed` until someone acts
        status = "active" if back_to is not None and reverted else "failed"
        values: dict[str, Any] = {"status": status}
        if back_to is not None:
            values["model_version_id"] = uuid.UUID(back_to.model_version_id)
        q.update_deployment(session=session, deployment_id=change.deployment_id, **values)
        restored: list[str] = []
        if change.promotion:
            restored = restore_registry(
                session,
                principal,
                from_version_id=uuid.UUID(change.target.model_version_id),
                promotion=change.promotion,
                reason=f"rollout {change.history_id} to {change.label} failed: {error}",
            )
        title = f"{change.kind.title()} of {change.target.model_version} to {change.label} failed"
        message = error + (
            f"; rolled back to {back_to.model_version}"
            if back_to and reverted
            else f"; rollback to {back_to.model_version} failed too: {revert.detail if revert else ''}"
            if back_to
            else ""
        )
        severity = Severity.HIGH if reverted else Severity.CRITICAL
        alert_id = q.open_alert(
            session=session,
            organization_id=change.organization_id,
            deployment_id=change.deployment_id,
            severity=severity,
            title=title,
            message=message,
        )
        summary = _payload(
            change,
            principal,
            status="failed",
            kind=change.kind,
            error=error,
            message=message,
            steps=[s.to_json() for s in steps],
            rolled_back_to=back_to.model_version if back_to else None,
            reverted=reverted,
            registry_restored=restored,
            alert_id=str(alert_id),
            rollback_history_id=str(rollback_id) if rollback_id else None,
            recovered=list(change.recovered),
        )
        record_change(
            session,
            principal=principal,
            action=f"deployment.{change.kind}.failed",
            resource_type="deployment",
            resource_id=change.deployment_id,
            details=summary,
            trigger_type=TriggerType.DEPLOYMENT,
            event_type=f"deployment.{change.kind}_failed",
            severity=severity,
            project_id=change.project_id,
            deployment_id=change.deployment_id,
            dedup_key=f"deployment-history:{change.history_id}",
        )
        emit_event(
            session,
            organization_id=change.organization_id,
            trigger_type=TriggerType.ALERT,
            event_type="alert.opened",
            severity=severity,
            project_id=change.project_id,
            deployment_id=change.deployment_id,
            payload={"alert_id": str(alert_id), "title": title, "message": message},
            dedup_key=f"alert:{alert_id}",
        )
    return summary


def _detail(verdict: Verdict | None) -> str:
    return verdict.detail if verdict else ""


# --- driving the platform -----------------------------------------------------------------------------------


def step(change: Change, index: int, percent: int) -> StepResult:
    """One rollout step (apply, health, bake) at `percent` on the new version."""
    traffic = traffic_split(percent, change.target, change.previous)
    return run_step(change.target_for_steps(), index, traffic)


def revert(change: Change) -> Verdict | None:
    """Give the platform its previous state back: 100% of the previous version, or nothing for a first deploy.
    None when nothing is driven (registry-only)."""
    if change.spec is None or change.config is None:
        return None
    backend = backend_for(change.config.backend)
    if change.kind == "rollout" and change.previous is not None:
        traffic = traffic_split(100, change.previous, None)
        return drive(backend, change.spec, traffic, change.config)[0]
    if change.kind == "rollout":
        return drive(backend, change.spec, [], change.config, check_health=False)[0]
    return None


def stop_serving(change: Change) -> Verdict:
    """Tell the platform to serve nothing (`traffic: []`), retrying within the health budget."""
    if change.spec is None or change.config is None:
        raise InvalidInput(f"{change.label} is registry-only: there is no platform to stop")
    return drive(backend_for(change.config.backend), change.spec, [], change.config, check_health=False)[0]


# --- reading ------------------------------------------------------------------------------------------------


def list_deployments(principal: Principal) -> list[dict[str, Any]]:
    """Every live deployment of the principal's organization: status, version, traffic, last action."""
    require(principal, Action.MODEL_READ)
    with session_scope(principal.organization_id) as session:
        rows = q.list_deployments(session=session)
    for row in rows:
        details = row.pop("last_details") or {}
        row["organization"] = principal.organization_slug
        row["traffic"] = details.get("traffic") or (
            [] if row["status"] == "inactive" else [{"model_version": row["version"], "percent": 100}]
        )
        if row["status"] == "active":
            row["traffic"] = [{"model_version": row["version"], "percent": 100}]
    return rows


def deployment_history(principal: Principal, request: ChangeRequest) -> list[dict[str, Any]]:
    """The deployment's history, newest first."""
    with session_scope(principal.organization_id) as session:
        deployment, _ = resolve_deployment(session, request)
        require(principal, Action.MODEL_READ, deployment.project_id)
        return q.history_of(session=session, deployment_id=deployment.id)
