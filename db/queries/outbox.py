"""The event outbox in SQL: one `notification_events` row, in the caller's transaction (`services.outbox`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import NotificationEvent


def insert_event(
    *,
    session: Session,
    organization_id: uuid.UUID,
    project_id: uuid.UUID | None,
    deployment_id: uuid.UUID | None,
    trigger_type: str,
    event_type: str,
    severity: str,
    payload: dict[str, Any],
    dedup_key: str | None,
) -> uuid.UUID | None:
    """The new event's id; None when the organization has an event with `dedup_key` already."""
    return session.execute(
        insert(NotificationEvent)
        .values(
            organization_id=organization_id,
            project_id=project_id,
            deployment_id=deployment_id,
            trigger_type=trigger_type,
            event_type=event_type,
            severity=severity,
            payload=payload,
            dedup_key=dedup_key,
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "dedup_key"])
        .returning(NotificationEvent.id)
    ).scalar_one_or_none()
