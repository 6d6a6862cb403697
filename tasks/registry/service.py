"""The registry's transactions: registering a version (upload the trained artifact, record it in
`development`), every stage move with its transition record, and putting the registry back after a failed or
abandoned rollout."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.numbers import require_finite
from core.vocabulary import Severity, Stage, TriggerType
from db.models import Model, ModelVersion
from db.queries import registry as q
from db.session import session_scope
from services.access import Action, Principal, require
from services.audit import record_audit, record_change, record_refusal
from services.storage import open_store, resolve_for_organization
from tasks.registry.rules import artifact_key, validate_version

CHUNK = 1 << 20


@dataclass(frozen=True)
class RegistrationRequest:
    organization: str
    project: str
    model: str
    version: str
    artifact: str  # an object in the organization's part of the artifact store (s3://…, file://…)
    metrics: dict[str, Any] = field(default_factory=dict)
    training_metrics: dict[str, Any] = field(default_factory=dict)
    model_schema: dict[str, Any] = field(default_factory=dict)
    requirements: str | None = None
    description: str | None = None
    model_type: str | None = None  # needed only when the model is new
    framework: str | None = None
    task_type: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistrationOutcome:
    status: str  # registered | unchanged
    model: str
    version: str
    model_created: bool
    artifact_uri: str
    size_bytes: int
    sha256: str
    model_version_id: uuid.UUID

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def validate_metrics(metrics: Any, what: str) -> dict[str, float]:
    """A JSON object of metric name → finite number; InvalidInput naming the offending entry."""
    if not isinstance(metrics, dict):
        raise InvalidInput(f"{what} must be a JSON object of metric name to number")
    for name, value in metrics.items():
        require_finite(value, f"{what}: '{name}'")
    return metrics


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256) of a local file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


REGISTRATION_AREAS = ("models", "uploads")  # where a flow run may take an artifact from: the org's own part


def register(principal: Principal, request: RegistrationRequest) -> RegistrationOutcome:
    """Record the version of an artifact already in the store (content-addressed, so concurrent uploads never
    clash): `request.artifact` must be a URI inside the organization's `models/<org>/` or `uploads/<org>/`.

    A flow run never reads a local path: a deployment run's parameters are untrusted, and the worker's disk
    holds its secrets. `mlops register` uploads a local file first (`stage_local_artifact`). Creates the model
    when new (needs model type and framework; honours the plan's `max_models`). The same version with the same
    artifact is a no-op; with a different artifact, a Conflict. A URI outside the organization's part is
    PermissionDenied, audited.
    """
    _validate(request)
    try:
        store, key = _artifact_in_store(request)
    except PermissionDenied as exc:
        _refusal(principal, request, str(exc))
        raise
    info = store.stat(key)
    if info.sha256 is None:
        raise InvalidInput(f"artifact '{request.artifact}' has no recorded sha256; register it from a local file")
    size, sha256 = info.size, info.sha256
    known = _preflight(principal, request, size, sha256)
    if known is not None:
        return known
    return _record(principal, request, store.uri_for(key), size, sha256)


def stage_local_artifact(principal: Principal, request: RegistrationRequest, path: Path) -> str:
    """Upload a local file for `request` (the CLI, on its user's machine) and return its store URI, for the flow
    run's `artifact`. Checks the request, the permission and the plan first, so a refused registration uploads
    nothing. Raises InvalidInput, NotFound, PermissionDenied (audited), Conflict."""
    _validate(request)
    if not path.is_file():
        raise InvalidInput(f"artifact '{path}' is not a readable file")
    size, sha256 = file_digest(path)
    known = _preflight(principal, request, size, sha256)
    store = open_store()
    if known is not None:
        return known.artifact_uri
    key = artifact_key(request.organization, request.project, request.model, request.version, sha256, path.name)
    if not (store.exists(key) and store.stat(key).sha256 == sha256):
        store.put(key, path)
    return store.uri_for(key)


def _validate(request: RegistrationRequest) -> None:
    validate_version(request.version)
    validate_metrics(request.metrics, "metrics")
    validate_metrics(request.training_metrics, "training metrics")
    if not isinstance(request.model_schema, dict):
        raise InvalidInput("the model schema must be a JSON object")


def _artifact_in_store(request: RegistrationRequest) -> tuple[Any, str]:
    try:
        return resolve_for_organization(request.artifact, request.organization, areas=REGISTRATION_AREAS)
    except PermissionDenied:
        if "://" not in request.artifact:
            raise PermissionDenied(
                f"artifact '{request.artifact}' is a local path: a flow run registers only artifact-store URIs "
                f"under models/{request.organization}/ or uploads/{request.organization}/ "
                "(`mlops register` uploads a local file first)"
            ) from None
        raise


def _preflight(
    principal: Principal, request: RegistrationRequest, size: int, sha256: str
) -> RegistrationOutcome | None:
    """Permission, a deleted model, the version already registered (its outcome), a new model's type and plan
    limit: checked before anything is written or uploaded."""
    try:
        with session_scope(principal.organization_id) as session:
            project = q.project_by_slug(session=session, slug=request.project)
            require(principal, Action.MODEL_REGISTER, project.id, what=f"project {request.project}")
            existing = q.find_model(session=session, project_id=project.id, name=request.model)
            if existing is not None and existing.deleted_at is not None:
                raise NotFound(f"model '{request.model}' has been deleted")
            if existing is not None:
                known = q.find_version(session=session, model_id=existing.id, version=request.version)
                if known is not None:
                    return _unchanged_or_conflict(request, known, size, sha256)
            else:
                if not (request.model_type and request.framework):
                    raise InvalidInput(
                        f"model '{request.model}' does not exist yet: give --model-type and --framework to create it"
                    )
                _check_model_limit(session, principal)  # before uploading anything; re-checked under a lock below
    except PermissionDenied as exc:
        _refusal(principal, request, str(exc))
        raise
    return None


def _record(
    principal: Principal, request: RegistrationRequest, artifact_uri: str, size: int, sha256: str
) -> RegistrationOutcome:
    with session_scope(principal.organization_id) as session:
        project = q.project_by_slug(session=session, slug=request.project)
        model, created = _model_for(session, principal, project.id, request)
        version_id = q.insert_version(
            session=session,
            model_id=model.id,
            version=request.version,
            stage="development",
            model_file_path=artifact_uri,
            model_size_bytes=size,
            artifact_sha256=sha256,
            requirements=request.requirements,
            performance_metrics=request.metrics,
            training_metrics=request.training_metrics,
            model_schema=request.model_schema,
            description=request.description,
            created_by=principal.user_id,
        )
        if version_id is None:  # registered concurrently since we looked
            known = q.find_version(session=session, model_id=model.id, version=request.version)
            return _unchanged_or_conflict(request, known, size, sha256)
        version = q.version_by_id(session=session, version_id=version_id)
        move_stage(session, principal, version, None, Stage.DEVELOPMENT, reason="registered")
        details = {
            "model": request.model,
            "version": request.version,
            "artifact": artifact_uri,
            "size_bytes": size,
            "sha256": sha256,
            "model_created": created,
            "metrics": request.metrics,
        }
        record_change(
            session,
            principal=principal,
            action="model_version.register",
            resource_type="model_version",
            resource_id=version_id,
            details=details,
            trigger_type=TriggerType.MODEL_UPDATE,
            event_type="model_version.registered",
            payload={**details, "actor": principal.display, "organization": principal.organization_slug},
            project_id=project.id,
            dedup_key=f"registered:{version_id}",
        )
    return RegistrationOutcome(
        status="registered",
        model=request.model,
        version=request.version,
        model_created=created,
        artifact_uri=artifact_uri,
        size_bytes=size,
        sha256=sha256,
        model_version_id=version_id,
    )


def _model_for(
    session, principal: Principal, project_id: uuid.UUID, request: RegistrationRequest
) -> tuple[Model, bool]:
    existing = q.find_model(session=session, project_id=project_id, name=request.model)
    if existing is not None:
        if existing.deleted_at is not None:
            raise NotFound(f"model '{request.model}' has been deleted")
        return existing, False
    # the organization row lock serialises model creation, so concurrent registrations cannot pass max_models
    _check_model_limit(session, principal, lock=True)
    created_id = q.insert_model(
        session=session,
        organization_id=principal.organization_id,
        project_id=project_id,
        name=request.model,
        model_type=request.model_type,
        framework=request.framework,
        task_type=request.task_type,
        tags=list(request.tags) or None,
        created_by=principal.user_id,
    )
    model = q.find_model(session=session, project_id=project_id, name=request.model)
    if created_id is not None:
        record_audit(
            session,
            principal=principal,
            action="model.create",
            resource_type="model",
            resource_id=created_id,
            details={"name": request.model, "model_type": request.model_type, "framework": request.framework},
        )
    return model, created_id is not None


def _check_model_limit(session, principal: Principal, *, lock: bool = False) -> None:
    """Conflict when the organization already has its plan's `max_models` live models."""
    org = q.organization_by_id(session=session, organization_id=principal.organization_id, lock=lock)
    live = q.count_live_models(session=session)
    if org.max_models is not None and live >= org.max_models:
        raise Conflict(
            f"organization '{org.slug}' has reached its plan's limit of {org.max_models} models "
            f"({org.subscription_plan} plan)"
        )


def _unchanged_or_conflict(
    request: RegistrationRequest, known: ModelVersion, size: int, sha256: str
) -> RegistrationOutcome:
    if known.deleted_at is not None:
        raise Conflict(f"version '{request.version}' of '{request.model}' was deleted; register a new version")
    if known.artifact_sha256 != sha256:
        raise Conflict(
            f"version '{request.version}' of '{request.model}' is already registered with a different artifact "
            f"(sha256 {(known.artifact_sha256 or 'unknown')[:12]}…, this one {sha256[:12]}…)"
        )
    return RegistrationOutcome(
        status="unchanged",
        model=request.model,
        version=request.version,
        model_created=False,
        artifact_uri=known.model_file_path,
        size_bytes=known.model_size_bytes or size,
        sha256=sha256,
        model_version_id=known.id,
    )


def _refusal(principal: Principal, request: RegistrationRequest, reason: str) -> None:
    record_refusal(
        principal,
        action="model_version.register",
        resource_type="model_version",
        reason=reason,
        details={"model": request.model, "version": request.version},
    )


# --- stage moves: the registry kept true -----------------------------------------------------------------


def move_stage(
    session: Session,
    principal: Principal,
    version: ModelVersion,
    from_stage: str | None,
    to_stage: str,
    *,
    reason: str | None,
    forced: bool = False,
    gate_results: list[dict[str, Any]] | None = None,
    at: datetime | None = None,
) -> uuid.UUID:
    """Move `version` from `from_stage` to `to_stage` and record the transition (who, why, when, the gates), in
    the caller's transaction; returns the transition's id. `from_stage` None: a version just registered."""
    if version.stage != to_stage:
        q.set_stage(session=session, version_id=version.id, stage=to_stage)
    return q.record_transition(
        session=session,
        organization_id=principal.organization_id,
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        actor_user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        reason=reason,
        forced=forced,
        gate_results=gate_results,
        at=at,
    )


def _stage_before_production(session: Session, version_id: uuid.UUID) -> str:
    """The stage the version held before its latest move into production (staging when unknown)."""
    came_from = q.stage_before_production(session=session, version_id=version_id)
    return came_from if came_from in ("development", "staging") else "staging"


def restore_registry(
    session: Session,
    principal: Principal,
    *,
    from_version_id: uuid.UUID,
    reason: str,
    promotion: dict[str, Any] | None = None,
    to_version_id: uuid.UUID | None = None,
) -> list[str]:
    """Move `from_version_id` out of production (back to the stage it came from) and the versions that held
    production before it back in: those the promotion archived, or `to_version_id`. Only when `from_version_id`
    is still the model's production version; returns the moves made ("1.1.0: production -> staging")."""
    from_version = q.version_by_id(session=session, version_id=from_version_id)
    if from_version is None or from_version.stage != "production":
        return []
    # the model's row lock orders this with concurrent promotions of the same model
    q.lock_model(session=session, model_id=from_version.model_id)
    if promotion:
        came_from = promotion.get("from_stage") or "staging"
        back_ids = [uuid.UUID(str(v)) for v in promotion.get("previous_production_version_ids") or []]
    else:
        came_from = _stage_before_production(session, from_version_id)
        back_ids = [to_version_id] if to_version_id else []
    if came_from == "production":
        came_from = "staging"
    moves = []
    move_stage(session, principal, from_version, Stage.PRODUCTION, came_from, reason=reason)
    moves.append(f"{from_version.version}: production -> {came_from}")
    for version_id in back_ids:
        version = q.version_by_id(session=session, version_id=version_id)
        if version is None or version.deleted_at is not None or version.model_id != from_version.model_id:
            continue
        if version.stage == "production":
            continue
        previous_stage = version.stage
        move_stage(session, principal, version, previous_stage, Stage.PRODUCTION, reason=reason)
        moves.append(f"{version.version}: {previous_stage} -> production")
    details = {"model_id": str(from_version.model_id), "moves": moves, "reason": reason}
    record_change(
        session,
        principal=principal,
        action="model_version.restore",
        resource_type="model_version",
        resource_id=from_version.id,
        details=details,
        trigger_type=TriggerType.MODEL_UPDATE,
        event_type="model_version.restored",
        severity=Severity.HIGH,
        payload={**details, "organization": principal.organization_slug, "actor": principal.display},
    )
    return moves


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
