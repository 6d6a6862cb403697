"""Promotion: evaluate a version's gates and move its stage, atomically with its history, audit and event."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import GateRejected, InvalidInput, NotFound, PermissionDenied
from core.vocabulary import Stage, TriggerType
from db.models import ModelVersion
from db.queries import registry as q
from db.session import session_scope
from services.access import Action, Principal, is_allowed, require
from services.audit import record_change, record_refusal
from tasks.promotion.rules import Champion, GateInputs, GateResult, evaluate_gates, gates_for, promotion_policy
from tasks.registry.rules import classify_transition, validate_stage, validate_version
from tasks.registry.service import move_stage

LOCK_TIMEOUT = "15s"
EVENT_TYPES = {
    "promotion": "model_version.promoted",
    "demotion": "model_version.demoted",
    "archive": "model_version.archived",
}


@dataclass(frozen=True)
class PromotionRequest:
    organization: str
    project: str
    model: str
    version: str
    to_stage: str
    reason: str | None = None
    dry_run: bool = False
    force: bool = False


@dataclass(frozen=True)
class PromotionOutcome:
    status: str  # promoted | demoted | archived | noop | dry_run
    model: str
    version: str
    from_stage: str
    to_stage: str
    gates: list[dict[str, Any]] = field(default_factory=list)
    forced: bool = False
    archived_versions: list[str] = field(default_factory=list)
    archived_version_ids: list[uuid.UUID] = field(default_factory=list)
    transition_id: uuid.UUID | None = None
    model_version_id: uuid.UUID | None = None
    production_deployment_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def required_action(current: str, target: str) -> Action:
    """The permission a transition needs: production in or out needs production rights."""
    if "production" in (current, target):
        return Action.PROMOTE_PRODUCTION
    if target == "archived":
        return Action.ARCHIVE
    return Action.PROMOTE_STAGING


def promote(principal: Principal, request: PromotionRequest) -> PromotionOutcome:
    """Move `request.version` to `request.to_stage` if its gates pass (or it is forced), in one transaction.

    The model row is locked, so concurrent promotions of one model run one after another; promoting to
    production archives the previous production version in the same transaction. Raises InvalidInput,
    NotFound, PermissionDenied, GateRejected (every failed gate listed) or Conflict; refusals are audited.
    """
    validate_version(request.version)
    validate_stage(request.to_stage)
    if request.force and not (request.reason or "").strip():
        raise InvalidInput("--force needs a --reason saying why the gates are skipped")
    try:
        # a lock not granted in LOCK_TIMEOUT, or a rival production version committed first: Conflict (db.errors)
        with session_scope(principal.organization_id, what=f"model '{request.model}'") as session:
            return _promote(session, principal, request)
    except PermissionDenied as exc:
        _refusal(principal, request, str(exc), "denied")
        raise
    except GateRejected as exc:
        _refusal(principal, request, str(exc), "rejected", {"failed_gates": exc.failures})
        raise


def _promote(session, principal: Principal, request: PromotionRequest) -> PromotionOutcome:
    what = f"{request.model} {request.version}"
    project = _authorized_project(session, principal, request, what)
    q.set_lock_timeout(session=session, timeout=LOCK_TIMEOUT)
    model = q.model_by_name(session=session, project_id=project.id, name=request.model, lock=True)
    version = q.version_by_name(session=session, model=model, version=request.version, lock=True)
    current = version.stage or "development"
    # one instant for the whole change, taken once the lock is held (not `now()`, the transaction's start):
    # promotions that waited for the lock get their history in the order they really happened
    stamp = q.clock_now(session=session)
    # moving a version out of production needs production rights too: known only now, under the lock
    require(principal, required_action(current, request.to_stage), project.id, what=what)
    policy = promotion_policy(project.settings, model.metadata_, model_type=model.model_type)
    kind = classify_transition(current, request.to_stage, allow_skip=policy.allow_skip_staging)
    outcome = dict(model=model.name, version=version.version, from_stage=current, to_stage=request.to_stage)
    if kind == "noop":
        return PromotionOutcome(status="noop", model_version_id=version.id, **outcome)

    inputs = _gate_inputs(session, model.id, version, request.to_stage)
    results = evaluate_gates(policy, inputs, gates_for(policy, request.to_stage, kind))
    gates = [r.to_json() for r in results]
    failed = [r for r in results if not r.passed]
    if failed and not request.force and not request.dry_run:
        raise GateRejected(
            _rejection(what, request.to_stage, failed),
            [f"{r.gate}: {r.detail}" for r in failed],
            gates,
            from_stage=current,
        )
    if request.dry_run:
        session.rollback()
        return PromotionOutcome(
            status="dry_run", gates=gates, forced=request.force, model_version_id=version.id, **outcome
        )

    archived = []
    archived_ids = []
    if request.to_stage == "production":
        for previous in q.production_versions(session=session, model_id=model.id):
            if previous.id == version.id:
                continue
            move_stage(
                session,
                principal,
                previous,
                Stage.PRODUCTION,
                Stage.ARCHIVED,
                reason=f"replaced in production by {version.version}",
                at=stamp,
            )
            archived.append(previous.version)
            archived_ids.append(previous.id)
    transition_id = move_stage(
        session,
        principal,
        version,
        current,
        request.to_stage,
        reason=request.reason,
        forced=request.force,
        gate_results=gates,
        at=stamp,
    )
    details = {
        "model": model.name,
        "version": version.version,
        "from_stage": current,
        "to_stage": request.to_stage,
        "reason": request.reason,
        "forced": request.force,
        "gates": gates,
        "archived_versions": archived,
    }
    record_change(
        session,
        principal=principal,
        action="model_version.promote",
        resource_type="model_version",
        resource_id=version.id,
        details=details,
        trigger_type=TriggerType.MODEL_UPDATE,
        event_type=EVENT_TYPES[kind],
        payload={**details, "actor": principal.display, "organization": principal.organization_slug},
        project_id=project.id,
        dedup_key=f"stage-transition:{transition_id}",
    )
    rollout_targets = (
        q.production_deployments_of_model(session=session, model_id=model.id)
        if request.to_stage == "production"
        else []
    )
    status = {"promotion": "promoted", "demotion": "demoted", "archive": "archived"}[kind]
    return PromotionOutcome(
        status=status,
        gates=gates,
        forced=request.force,
        archived_versions=archived,
        archived_version_ids=archived_ids,
        transition_id=transition_id,
        model_version_id=version.id,
        production_deployment_ids=rollout_targets,
        **outcome,
    )


def _authorized_project(session, principal: Principal, request: PromotionRequest, what: str):
    """The project, after checking the permission for the target stage (and for forcing) before any other
    lookup or row lock: an unauthorised caller neither learns which models and versions exist nor holds locks.
    A principal allowed only through project roles learns no more than whether the project exists."""
    action = required_action(request.to_stage, request.to_stage)
    org_wide = is_allowed(principal, action)
    if not org_wide and not principal.project_roles:
        require(principal, action, what=what)
    if request.force:
        require(principal, Action.FORCE_PROMOTION, what=f"forcing {what}")  # organization admins only
    try:
        project = q.project_by_slug(session=session, slug=request.project)
    except NotFound:
        if not org_wide:
            require(principal, action, what=what)
        raise
    require(principal, action, project.id, what=what)
    return project


def _gate_inputs(session, model_id: uuid.UUID, version: ModelVersion, target: str) -> GateInputs:
    champion = None
    for current in q.production_versions(session=session, model_id=model_id):
        if current.id != version.id and current.deleted_at is None:
            champion = Champion(version=current.version, metrics=current.performance_metrics or {})
    staging = q.serving_deployments(session=session, version_id=version.id, environment="staging")
    staging_ids = [d.id for d in staging]
    reports = q.latest_drift_reports(session=session, deployment_ids=staging_ids)
    return GateInputs(
        target_stage=target,
        candidate_metrics=version.performance_metrics or {},
        champion=champion,
        hours_in_staging=q.hours_in_current_stage(session=session, version_id=version.id, stage="staging")
        if version.stage == "staging"
        else None,
        staging_deployments=tuple(d.name for d in staging),
        blocking_alerts=q.unresolved_alerts(session=session, deployment_ids=staging_ids),
        drift_reports={d.name: reports.get(d.id) for d in staging},
    )


def _rejection(what: str, target: str, failed: list[GateResult]) -> str:
    gates = " | ".join(f"{r.gate}: {r.detail}" for r in failed)
    return f"promotion of {what} to {target} rejected by {len(failed)} gate(s): {gates}"


def _refusal(principal: Principal, request: PromotionRequest, reason: str, outcome: str, extra=None) -> None:
    record_refusal(
        principal,
        action="model_version.promote",
        resource_type="model_version",
        reason=reason,
        outcome=outcome,
        details={
            "model": request.model,
            "version": request.version,
            "to_stage": request.to_stage,
            "forced": request.force,
            **(extra or {}),
        },
    )
