"""Rollout, rollback and terminate: validation, the one-change-at-a-time lock, and every state change.

Each state change is one transaction that keeps the deployment, its history, the registry stages and their
history, audit rows and outbox events consistent. The unfinished (`in_progress`) history row is the rollout's
lock: taken under the deployment's row lock, unique per deployment (an index), renewed per step, and recovered
by the next rollout or rollback once its lease has expired (its process died).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from prefect import task
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound
from db.models import Deployment
from db.queries import registry as rq
from db.queries import rollout as q
from db.session import session_scope
from services.access import Action, Principal
from services.audit import authorize, record_audit
from services.outbox import emit_event
from services.serving import DeploymentSpec, backend_for
from services.storage import resolve
from tasks.common import IO_TASK
from tasks.registry import validate_version
from tasks.rollout_drive import Target, drive, run_step
from tasks.rollout_registry import restore_registry
from tasks.rollout_rules import (
    Overrides,
    ServingConfig,
    StepResult,
    Verdict,
    VersionRef,
    serving_config,
    stage_fits,
    step_lease_seconds,
    traffic_split,
    validate_overrides,
)

ENVIRONMENTS = ("development", "staging", "production")
LOCK_TIMEOUT = "5s"
ROLLOUT_ACTIONS = {
    "development": Action.ROLLOUT_DEVELOPMENT,
    "staging": Action.ROLLOUT_STAGING,
    "production": Action.ROLLOUT_PRODUCTION,
}


@dataclass(frozen=True)
class ChangeRequest:
    """What a rollout, rollback or terminate was asked to do (the flow's parameters)."""

    organization: str
    project: str | None = None
    deployment: str | None = None
    environment: str | None = None
    version: str | None = None
    deployment_id: str | None = None
    model_version_id: str | None = None
    overrides: Overrides = field(default_factory=Overrides)
    force: bool = False
    reason: str | None = None
    promotion: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    """A validated change of one deployment, passed between the flow's tasks (plain data)."""

    kind: str  # rollout | rollback | terminate
    action: str  # the history action: deploy | update | rollback | terminate
    organization_id: uuid.UUID
    organization: str
    project_id: uuid.UUID
    deployment_id: uuid.UUID
    label: str  # org/project/name (environment)
    environment: str
    target: VersionRef  # the version the deployment should serve afterwards (terminate: the current one)
    previous: VersionRef | None  # what it served last (a failed rollout goes back to it)
    spec: DeploymentSpec | None  # None: registry-only
    config: ServingConfig | None
    reason: str | None = None
    forced: bool = False
    promotion: dict[str, Any] | None = None
    noop: str | None = None  # why nothing needs doing
    history_id: uuid.UUID | None = None
    recovered: tuple[str, ...] = ()

    def target_for_steps(self) -> Target:
        assert self.spec is not None and self.config is not None and self.history_id is not None
        return Target(
            self.organization_id,
            self.deployment_id,
            self.history_id,
            self.spec,
            self.config,
            step_lease_seconds(self.config),
        )


# --- planning: validate everything, write nothing -----------------------------------------------------------


def _ref(version) -> VersionRef:
    return VersionRef(str(version.id), version.version, version.model_file_path)


def _resolve_deployment(session: Session, request: ChangeRequest) -> tuple[Deployment, str]:
    if request.deployment_id:
        deployment = q.deployment_by_id(session=session, deployment_id=uuid.UUID(request.deployment_id))
        project = q.project_by_id(session=session, project_id=deployment.project_id)
    else:
        if not (request.project and request.deployment and request.environment):
            raise InvalidInput("name the deployment as ORG/PROJECT/DEPLOYMENT with --env")
        if request.environment not in ENVIRONMENTS:
            raise InvalidInput(f"--env must be one of {', '.join(ENVIRONMENTS)}, got '{request.environment}'")
        project = rq.project_by_slug(session=session, slug=request.project)
        deployment = q.deployment_by_name(
            session=session, project_id=project.id, name=request.deployment, environment=request.environment
        )
    return deployment, f"{request.organization}/{project.slug}/{deployment.name} ({deployment.environment})"


def _resolve_version(
    session: Session, deployment: Deployment, request: ChangeRequest, version: str | None, *, rollback: bool = False
):
    if request.model_version_id and version is None:
        found, model = q.version_with_model(session=session, version_id=uuid.UUID(request.model_version_id))
    else:
        validate_version(version or "")
        _, current_model = q.version_with_model(session=session, version_id=deployment.model_version_id)
        found = q.version_of_model(session=session, model_id=current_model.id, version=version or "")
        model = current_model
        if found is None:
            candidates = q.versions_named(session=session, project_id=deployment.project_id, version=version or "")
            if not candidates:
                raise NotFound(f"model '{current_model.name}' has no version '{version}'")
            if len(candidates) > 1:
                raise InvalidInput(f"version '{version}' names versions of several models in this project")
            found, model = candidates[0]
    if model.project_id != deployment.project_id:
        raise InvalidInput(f"version {found.version} belongs to another project than the deployment")
    if found.deleted_at is not None or model.deleted_at is not None:
        raise NotFound(f"version '{found.version}' of model '{model.name}' has been deleted")
    if found.stage == "archived" and not rollback:  # a rollback returns to what was served, archived or not
        raise InvalidInput(f"version {found.version} is archived and cannot be deployed")
    if found.artifact_purged_at is not None:
        raise InvalidInput(f"version {found.version}'s artifact was purged by retention")
    return found


def _spec(deployment: Deployment, config: ServingConfig | None) -> DeploymentSpec | None:
    if config is None:
        return None
    return DeploymentSpec(
        deployment_id=str(deployment.id),
        name=deployment.name,
        environment=deployment.environment,
        instance_type=deployment.instance_type,
        min_instances=deployment.min_instances,
        max_instances=deployment.max_instances,
        auto_scaling=deployment.auto_scaling,
        config={k: v for k, v in (deployment.deployment_config or {}).items() if k != "serving"},
        control_url=config.control_url,
        endpoint_url=deployment.endpoint_url,
        health_check_path=deployment.health_check_path,
    )


def _previous(session: Session, deployment: Deployment) -> VersionRef | None:
    """The last version that completed on the deployment (what a failed rollout goes back to)."""
    version_id = q.last_completed_version(session=session, deployment_id=deployment.id)
    if version_id is None and deployment.status == "active":  # deployed before this flow kept history
        version_id = deployment.model_version_id
    if version_id is None:
        return None
    return _ref(q.version_with_model(session=session, version_id=version_id)[0])


def _authorize(principal: Principal, deployment: Deployment, label: str, kind: str) -> None:
    action = ROLLOUT_ACTIONS[deployment.environment]
    if kind != "rollout" and deployment.environment == "production":
        action = Action.ROLLBACK
    authorize(
        principal,
        action,
        deployment.project_id,
        what=label,
        audit_action=f"deployment.{kind}",
        resource_type="deployment",
        resource_id=deployment.id,
    )


def check_artifact(version: VersionRef, size: int | None) -> None:
    """The version's artifact exists in the store with its recorded size; NotFound or InvalidInput otherwise."""
    store, key = resolve(version.artifact_uri)
    info = store.stat(key)
    if size is not None and info.size != size:
        raise InvalidInput(
            f"artifact of {version.model_version} at {version.artifact_uri} is {info.size} bytes, registered as {size}"
        )


def plan_rollout(principal: Principal, request: ChangeRequest) -> Change:
    """Validate a rollout: deployment and version in one project, the version deployable there, the caller
    allowed, the artifact present. Raises InvalidInput, NotFound or PermissionDenied (audited); writes nothing."""
    validate_overrides(request.overrides)
    if request.force and not (request.reason or "").strip():
        raise InvalidInput("--force needs a --reason saying why the stage check is skipped")
    with session_scope(principal.organization_id) as session:
        deployment, label = _resolve_deployment(session, request)
        version = _resolve_version(session, deployment, request, request.version)
        _authorize(principal, deployment, label, "rollout")
        if not stage_fits(deployment.environment, version.stage):
            if not request.force:
                raise InvalidInput(
                    f"version {version.version} is in {version.stage}; a {deployment.environment} deployment takes "
                    f"{' or '.join(_fitting(deployment.environment))} versions (an organization admin may --force "
                    "--reason)"
                )
            authorize(
                principal,
                Action.FORCE_PROMOTION,
                deployment.project_id,
                what=f"forcing {label}",
                audit_action="deployment.rollout",
                resource_type="deployment",
                resource_id=deployment.id,
            )
        config = serving_config(deployment.deployment_config, request.overrides)
        previous = _previous(session, deployment)
        unfinished = q.unfinished(session=session, deployment_id=deployment.id)
        noop = None
        if deployment.status == "active" and deployment.model_version_id == version.id and unfinished is None:
            noop = f"{label} already serves {version.version}: nothing to do"
        change = Change(
            kind="rollout",
            action="update" if previous else "deploy",
            organization_id=principal.organization_id,
            organization=principal.organization_slug,
            project_id=deployment.project_id,
            deployment_id=deployment.id,
            label=label,
            environment=deployment.environment,
            target=_ref(version),
            previous=previous,
            spec=_spec(deployment, config),
            config=config,
            reason=request.reason,
            forced=request.force and not stage_fits(deployment.environment, version.stage),
            promotion=request.promotion,
            noop=noop,
        )
        size = version.model_size_bytes
    if noop is None:
        check_artifact(change.target, size)
    return change


def _fitting(environment: str) -> tuple[str, ...]:
    from tasks.rollout_rules import STAGES_FOR_ENVIRONMENT

    return STAGES_FOR_ENVIRONMENT[environment]


def plan_rollback(principal: Principal, request: ChangeRequest) -> Change:
    """Validate a manual rollback: to `request.version`, else to the previous completed version (the last
    completed one when a rollout is unfinished or failed). Writes nothing."""
    if not (request.reason or "").strip():
        raise InvalidInput("a rollback needs a --reason")
    with session_scope(principal.organization_id) as session:
        deployment, label = _resolve_deployment(session, request)
        _authorize(principal, deployment, label, "rollback")
        current = deployment.model_version_id
        unfinished = q.unfinished(session=session, deployment_id=deployment.id)
        settled = deployment.status == "active" and unfinished is None
        if request.version:
            version = _resolve_version(session, deployment, request, request.version, rollback=True)
        else:
            target_id = q.last_completed_version(
                session=session, deployment_id=deployment.id, other_than=current if settled else None
            )
            if target_id is None and settled:
                target_id = q.recorded_previous(session=session, deployment_id=deployment.id, version_id=current)
            if target_id is None:
                raise InvalidInput(f"{label} has no earlier completed version to roll back to; name one")
            version = _resolve_version(
                session, deployment, replace(request, model_version_id=str(target_id)), None, rollback=True
            )
        config = serving_config(deployment.deployment_config, Overrides(bake_seconds=0))
        noop = f"{label} already serves {version.version}: nothing to do" if settled and current == version.id else None
        from_version = q.version_with_model(session=session, version_id=current)[0]
        if unfinished is not None:  # the version a crashed rollout was putting in place is what we roll back from
            from_version = q.version_with_model(session=session, version_id=unfinished["model_version_id"])[0]
        change = Change(
            kind="rollback",
            action="rollback",
            organization_id=principal.organization_id,
            organization=principal.organization_slug,
            project_id=deployment.project_id,
            deployment_id=deployment.id,
            label=label,
            environment=deployment.environment,
            target=_ref(version),
            previous=_ref(from_version),
            spec=_spec(deployment, config),
            config=config,
            reason=request.reason,
            noop=noop,
        )
        size = version.model_size_bytes
    if noop is None:
        check_artifact(change.target, size)
    return change


def plan_terminate(principal: Principal, request: ChangeRequest) -> Change:
    """Validate a termination; a deployment already terminated is a no-op. Writes nothing."""
    if not (request.reason or "").strip():
        raise InvalidInput("terminating a deployment needs a --reason")
    with session_scope(principal.organization_id) as session:
        deployment, label = _resolve_deployment(session, request)
        _authorize(principal, deployment, label, "terminate")
        version = q.version_with_model(session=session, version_id=deployment.model_version_id)[0]
        config = serving_config(deployment.deployment_config)
        done = deployment.status == "inactive" and deployment.terminated_at is not None
        return Change(
            kind="terminate",
            action="terminate",
            organization_id=principal.organization_id,
            organization=principal.organization_slug,
            project_id=deployment.project_id,
            deployment_id=deployment.id,
            label=label,
            environment=deployment.environment,
            target=_ref(version),
            previous=None,
            spec=_spec(deployment, config),
            config=config,
            reason=request.reason,
            noop=f"{label} is already terminated: nothing to do" if done else None,
        )


# --- the state changes: one transaction each ----------------------------------------------------------------


def _performer(principal: Principal, deployment: Deployment) -> uuid.UUID:
    return principal.user_id or deployment.created_by


def _locked(session: Session, change: Change) -> Deployment:
    q.set_lock_timeout(session=session, timeout=LOCK_TIMEOUT)
    try:
        return q.deployment_by_id(session=session, deployment_id=change.deployment_id, lock=True)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise Conflict(f"{change.label} is being changed by another run; try again later") from None
        raise


def begin(principal: Principal, change: Change) -> Change:
    """Take the deployment: under its row lock, refuse when another change is unfinished (recover it when its
    lease expired), then record the `in_progress` history row and the deployment's new status."""
    try:
        with session_scope(principal.organization_id) as session:
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
    except IntegrityError as exc:
        if "uq_deployment_history__one_unfinished" in str(exc.orig):
            raise Conflict(f"{change.label} is already being changed by another run") from None
        raise
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
    with session_scope(principal.organization_id) as session:
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
                session=session, deployment_id=change.deployment_id, status="inactive", terminated_at=_now()
            )
        else:
            q.update_deployment(
                session=session,
                deployment_id=change.deployment_id,
                status="active",
                model_version_id=uuid.UUID(change.target.model_version_id),
                deployed_at=_now(),
                terminated_at=None,
            )
        if change.kind == "rollback" and change.environment == "production" and change.previous:
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
        record_audit(
            session,
            principal=principal,
            action=f"deployment.{change.kind}",
            resource_type="deployment",
            resource_id=change.deployment_id,
            details=summary,
        )
        emit_event(
            session,
            organization_id=change.organization_id,
            trigger_type="deployment",
            event_type=f"deployment.{verb}",
            project_id=change.project_id,
            deployment_id=change.deployment_id,
            payload=summary,
            dedup_key=f"deployment-history:{change.history_id}",
        )
    return summary


def record_failure(
    principal: Principal, change: Change, steps: list[StepResult], error: str, revert: Verdict | None
) -> dict[str, Any]:
    """Record a failed change in one transaction: the change's row `failed` with its error; for a rollout, a
    `rollback` row (completed when the platform serves the previous version again) and the deployment back on
    it, the registry restored when the rollout came from a promotion; a `high` alert; audit; events."""
    with session_scope(principal.organization_id) as session:
        deployment = _locked(session, change)
        q.finish_history(
            session=session,
            history_id=change.history_id,
            status="failed",
            error_message=error,
            details={"results": [s.to_json() for s in steps]},
        )
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
        severity = "high" if reverted else "critical"
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
        record_audit(
            session,
            principal=principal,
            action=f"deployment.{change.kind}.failed",
            resource_type="deployment",
            resource_id=change.deployment_id,
            details=summary,
        )
        emit_event(
            session,
            organization_id=change.organization_id,
            trigger_type="deployment",
            event_type=f"deployment.{change.kind}_failed",
            severity=severity,
            project_id=change.project_id,
            deployment_id=change.deployment_id,
            payload=summary,
            dedup_key=f"deployment-history:{change.history_id}",
        )
        emit_event(
            session,
            organization_id=change.organization_id,
            trigger_type="alert",
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


def _now():
    from sqlalchemy import func

    return func.now()


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
    assert change.spec is not None and change.config is not None
    return drive(backend_for(change.config.backend), change.spec, [], change.config, check_health=False)[0]


# --- reading ------------------------------------------------------------------------------------------------


def list_deployments(principal: Principal) -> list[dict[str, Any]]:
    """Every live deployment of the principal's organization: status, version, traffic, last action."""
    from services.access import require

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
    from services.access import require

    with session_scope(principal.organization_id) as session:
        deployment, _ = _resolve_deployment(session, request)
        require(principal, Action.MODEL_READ, deployment.project_id)
        return q.history_of(session=session, deployment_id=deployment.id)


# --- Prefect tasks ------------------------------------------------------------------------------------------

# The platform-driving tasks are not retried by Prefect: they retry inside their health budget, and a rerun
# would apply a step twice.
DRIVE_TASK: dict[str, Any] = {"retries": 0}


@task(name="plan-rollout", **IO_TASK)
def plan_rollout_task(principal: Principal, request: ChangeRequest) -> Change:
    return plan_rollout(principal, request)


@task(name="plan-rollback", **IO_TASK)
def plan_rollback_task(principal: Principal, request: ChangeRequest) -> Change:
    return plan_rollback(principal, request)


@task(name="plan-terminate", **IO_TASK)
def plan_terminate_task(principal: Principal, request: ChangeRequest) -> Change:
    return plan_terminate(principal, request)


@task(name="begin-change", **IO_TASK)
def begin_task(principal: Principal, change: Change) -> Change:
    return begin(principal, change)


@task(name="rollout-step", **DRIVE_TASK)
def step_task(change: Change, index: int, percent: int) -> StepResult:
    return step(change, index, percent)


@task(name="revert-platform", **DRIVE_TASK)
def revert_task(change: Change) -> Verdict | None:
    return revert(change)


@task(name="stop-serving", **DRIVE_TASK)
def stop_serving_task(change: Change) -> Verdict:
    return stop_serving(change)


@task(name="complete-change", **IO_TASK)
def complete_task(principal: Principal, change: Change, steps: list[StepResult]) -> dict[str, Any]:
    return complete(principal, change, steps)


@task(name="record-failure", **IO_TASK)
def record_failure_task(
    principal: Principal, change: Change, steps: list[StepResult], error: str, revert: Verdict | None
) -> dict[str, Any]:
    return record_failure(principal, change, steps, error, revert)


def change_json(change: Change) -> dict[str, Any]:
    return asdict(change)


def revert_promotion(
    principal: Principal, model_version_id: uuid.UUID, promotion: dict[str, Any], why: str
) -> list[str]:
    """Undo a promotion whose rollout could not start, in one transaction (stage history and audit included)."""
    with session_scope(principal.organization_id) as session:
        return restore_registry(
            session,
            principal,
            from_version_id=model_version_id,
            promotion=promotion,
            reason=f"its rollout could not start: {why}",
        )


@task(name="revert-promotion", **IO_TASK)
def revert_promotion_task(
    principal: Principal, model_version_id: uuid.UUID, promotion: dict[str, Any], why: str
) -> list[str]:
    return revert_promotion(principal, model_version_id, promotion, why)
