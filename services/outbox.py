"""The transactional event outbox: `emit_event` inserts a `notification_events` row in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from core.vocabulary import Severity, TriggerType, one_of
from db.queries.outbox import insert_event

__all__ = ["Severity", "TriggerType", "emit_event"]


def emit_event(
    session: Session,
    *,
    organization_id: uuid.UUID,
    trigger_type: TriggerType,
    event_type: str,
    payload: dict[str, Any],
    severity: Severity = Severity.INFO,
    project_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
    dedup_key: str | None = None,
) -> uuid.UUID | None:
    """Record an event for notification dispatch; it exists if and only if the caller's transaction commits.

    With `dedup_key`, a second event with the same key in the organization is dropped (a re-run of the same
    change); returns the new event's id, or None when it was a duplicate. A trigger type or severity outside the
    vocabulary is a bug in the caller: InvalidInput before anything is written.
    """
    return insert_event(
        session=session,
        organization_id=organization_id,
        project_id=project_id,
        deployment_id=deployment_id,
        trigger_type=one_of(TriggerType, trigger_type, "trigger_type").value,
        event_type=event_type,
        severity=one_of(Severity, severity, "severity").value,
        payload=payload,
        dedup_key=dedup_key,
    )
