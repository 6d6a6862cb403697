"""Planning a rollout, rollback or terminate: resolve and validate everything, write nothing (refusals are audited)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotFound
from core.vocabulary import Environment, one_of
from db.models import Deployment
from db.queries import registry as rq
from db.queries import rollout as q
from db.session import session_scope
from services.access import Action, Principal
from services.audit import authorize
from services.serving import DeploymentSpec
from services.storage import resolve
from tasks.registry.rules import validate_version
from tasks.rollout.drive import Target
from tasks.rollout.rules import (
    STAGES_FOR_ENVIRONMENT,
    Overrides,
    ServingConfig,
    VersionRef,
    serving_config,
    stage_fits,
    step_lease_seconds,
    validate_overrides,
)

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
        if self.spec is None or self.config is None or self.history_id is None:
            raise InvalidInput(f"{self.label} is registry-only or not started: there is no platform step to run")
        return Target(
            self.organization_id,
            self.deployment_id,
            self.history_id,
            self.spec,
            self.config,
            step_lease_seconds(self.config),
        )


def _ref(version) -> VersionRef:
    return VersionRef(str(version.id), version.version, version.model_file_path)


def resolve_deployment(session: Session, request: ChangeRequest) -> tuple[Deployment, str]:
    if request.deployment_id:
        deployment = q.deployment_by_id(session=session, deployment_id=uuid.UUID(request.deployment_id))
        project = q.project_by_id(session=session, project_id=deployment.project_id)
    else:
        if not (request.project and request.deployment and request.environment):
            raise InvalidInput("name the deployment as ORG/PROJECT/DEPLOYMENT with --env")
        one_of(Environment, request.environment, "--env")
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
        deployment, label = resolve_deployment(session, request)
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
    return STAGES_FOR_ENVIRONMENT[environment]


def plan_rollback(principal: Principal, request: ChangeRequest) -> Change:
    """Validate a manual rollback: to `request.version`, else to the previous completed version (the last
    completed one when a rollout is unfinished or failed). Writes nothing."""
    if not (request.reason or "").strip():
        raise InvalidInput("a rollback needs a --reason")
    with session_scope(principal.organization_id) as session:
        deployment, label = resolve_deployment(session, request)
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
        deployment, label = resolve_deployment(session, request)
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
