"""The transactional event outbox: `emit_event` inserts a `notification_events` row in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.orm import Session

from db.queries.outbox import insert_event

TriggerType = Literal["alert", "deployment", "model_update", "experiment_complete"]
Severity = Literal["info", "low", "medium", "high", "critical"]


def emit_event(
    session: Session,
    *,
    organization_id: uuid.UUID,
    trigger_type: TriggerType,
    event_type: str,
    payload: dict[str, Any],
    severity: Severity = "info",
    project_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
    dedup_key: str | None = None,
) -> uuid.UUID | None:
    """Record an event for notification dispatch; it exists if and only if the caller's transaction commits.

    With `dedup_key`, a second event with the same key in the organization is dropped (a re-run of the same
    change); returns the new event's id, or None when it was a duplicate.
    """
    return insert_event(
        session=session,
        organization_id=organization_id,
        project_id=project_id,
        deployment_id=deployment_id,
        trigger_type=trigger_type,
        event_type=event_type,
        severity=severity,
        payload=payload,
        dedup_key=dedup_key,
    )
