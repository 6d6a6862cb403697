"""Keeping the registry true after a rollback: the version rolled away from leaves production, the version
served again returns to it, each with a stage-history row naming why, in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from db.queries import registry as rq
from services.access import Principal
from services.audit import record_audit
from services.outbox import emit_event


def _stage_before_production(session: Session, version_id: uuid.UUID) -> str:
    """The stage the version held before its latest move into production (staging when unknown)."""
    came_from = rq.stage_before_production(session=session, version_id=version_id)
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
    from_version = rq.version_by_id(session=session, version_id=from_version_id)
    if from_version is None or from_version.stage != "production":
        return []
    # the model's row lock orders this with concurrent promotions of the same model
    rq.lock_model(session=session, model_id=from_version.model_id)
    if promotion:
        came_from = promotion.get("from_stage") or "staging"
        back_ids = [uuid.UUID(str(v)) for v in promotion.get("previous_production_version_ids") or []]
    else:
        came_from = _stage_before_production(session, from_version_id)
        back_ids = [to_version_id] if to_version_id else []
    if came_from == "production":
        came_from = "staging"
    moves = []
    rq.set_stage(session=session, version_id=from_version.id, stage=came_from)
    rq.record_transition(
        session=session,
        organization_id=principal.organization_id,
        version=from_version,
        from_stage="production",
        to_stage=came_from,
        actor_user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        reason=reason,
    )
    moves.append(f"{from_version.version}: production -> {came_from}")
    for version_id in back_ids:
        version = rq.version_by_id(session=session, version_id=version_id)
        if version is None or version.deleted_at is not None or version.model_id != from_version.model_id:
            continue
        if version.stage == "production":
            continue
        previous_stage = version.stage
        rq.set_stage(session=session, version_id=version.id, stage="production")
        rq.record_transition(
            session=session,
            organization_id=principal.organization_id,
            version=version,
            from_stage=previous_stage,
            to_stage="production",
            actor_user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            reason=reason,
        )
        moves.append(f"{version.version}: {previous_stage} -> production")
    details = {"model_id": str(from_version.model_id), "moves": moves, "reason": reason}
    record_audit(
        session,
        principal=principal,
        action="model_version.restore",
        resource_type="model_version",
        resource_id=from_version.id,
        details=details,
    )
    emit_event(
        session,
        organization_id=principal.organization_id,
        trigger_type="model_update",
        event_type="model_version.restored",
        severity="high",
        payload={**details, "organization": principal.organization_slug, "actor": principal.display},
    )
    return moves
