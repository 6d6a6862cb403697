"""The audit trail in SQL: one `audit_logs` row, in the caller's transaction (`services.audit` decides what)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from db.models import AuditLog


def insert_audit_log(
    *,
    session: Session,
    organization_id: uuid.UUID,
    user_id: uuid.UUID | None,
    api_key_id: uuid.UUID | None,
    action: str,
    resource_type: str,
    resource_id: uuid.UUID | None,
    details: dict[str, Any],
    ip_address: str | None,
    user_agent: str | None,
) -> uuid.UUID:
    """The new audit row's id."""
    return session.execute(
        insert(AuditLog)
        .values(
            organization_id=organization_id,
            user_id=user_id,
            api_key_id=api_key_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        .returning(AuditLog.id)
    ).scalar_one()
