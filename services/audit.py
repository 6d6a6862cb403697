"""The audit trail: `record_audit` writes an `audit_logs` row in the caller's transaction; `record_change` writes
it together with the change's outbox event."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from core.errors import PermissionDenied
from db.queries.audit import insert_audit_log
from db.session import session_scope
from services.access import Action, Principal, require
from services.client_context import client_context, current_client
from services.outbox import Severity, TriggerType, emit_event

__all__ = ["authorize", "client_context", "record_audit", "record_change", "record_refusal"]


def record_audit(
    session: Session,
    *,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Insert one audit row (actor user or API key; none for the system) and return its id.

    Written in the caller's transaction, so the row exists if and only if the change it records commits.
    """
    client = current_client()
    body = dict(details or {})
    if principal.is_system:
        body.setdefault("actor", "system")
    if principal.requested_by:
        body.setdefault("requested_by", {"email": principal.requested_by, "verified": False})
    return insert_audit_log(
        session=session,
        organization_id=principal.organization_id,
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=body,
        ip_address=client.ip_address,
        user_agent=client.user_agent,
    )


def record_change(
    session: Session,
    *,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None,
    details: dict[str, Any],
    trigger_type: TriggerType,
    event_type: str,
    payload: dict[str, Any] | None = None,
    severity: Severity = Severity.INFO,
    project_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
    dedup_key: str | None = None,
) -> uuid.UUID:
    """A change made for `principal`: its audit row and its outbox event (`payload`, default `details`), both in
    the caller's transaction, so both exist if and only if the change commits. Returns the audit row's id."""
    audit_id = record_audit(
        session,
        principal=principal,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )
    emit_event(
        session,
        organization_id=principal.organization_id,
        trigger_type=trigger_type,
        event_type=event_type,
        payload=details if payload is None else payload,
        severity=severity,
        project_id=project_id,
        deployment_id=deployment_id,
        dedup_key=dedup_key,
    )
    return audit_id


def record_refusal(
    principal: Principal,
    *,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None = None,
    reason: str,
    details: dict[str, Any] | None = None,
    outcome: str = "denied",
) -> None:
    """Audit a refused request (`<action>.denied`, or `.rejected` by a gate) in a transaction of its own:
    the refused change itself wrote nothing."""
    with session_scope(principal.organization_id) as session:
        record_audit(
            session,
            principal=principal,
            action=f"{action}.{outcome}",
            resource_type=resource_type,
            resource_id=resource_id,
            details={**(details or {}), "outcome": outcome, "reason": reason},
        )


def authorize(
    principal: Principal,
    action: Action,
    project_id: uuid.UUID | None = None,
    *,
    what: str = "",
    audit_action: str,
    resource_type: str,
    resource_id: uuid.UUID | None = None,
) -> None:
    """`require`, auditing a refusal as `<audit_action>.denied` before raising PermissionDenied."""
    try:
        require(principal, action, project_id, what=what)
    except PermissionDenied as exc:
        record_refusal(
            principal, action=audit_action, resource_type=resource_type, resource_id=resource_id, reason=str(exc)
        )
        raise
