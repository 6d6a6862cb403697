"""What the flows wrote, read back for people: outbox events and drift reports (RLS-scoped sessions)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def list_events(
    *, session: Session, pending: bool, limit: int, project_ids: list[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """The newest outbox events first; only undispatched ones with `pending`; only those of `project_ids` (and
    none without a project) when given."""
    rows = session.execute(
        text(
            """
            SELECT e.id, e.created_at, e.trigger_type, e.event_type, e.severity, p.slug AS project,
                   d.name AS deployment, d.environment, e.dispatched_at, e.payload
            FROM notification_events e
            LEFT JOIN projects p ON p.id = e.project_id
            LEFT JOIN deployments d ON d.id = e.deployment_id
            WHERE (NOT :pending OR e.dispatched_at IS NULL)
              AND (CAST(:projects AS uuid[]) IS NULL OR e.project_id = ANY(CAST(:projects AS uuid[])))
            ORDER BY e.created_at DESC, e.id
            LIMIT :limit
            """
        ),
        {"pending": pending, "limit": limit, "projects": project_ids},
    ).mappings()
    return [dict(r) for r in rows]


def list_drift_reports(*, session: Session, deployment_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    """A deployment's drift reports, newest window first."""
    rows = session.execute(
        text(
            """
            SELECT r.id, r.period_start, r.period_end, r.drift_score, r.drift_threshold, r.is_drift_detected,
                   CAST(r.report_data #>> '{columns,analysed}' AS int) AS analysed,
                   CAST(r.report_data #>> '{columns,drifted}' AS int) AS drifted,
                   CAST(r.report_data #>> '{columns,failed}' AS int) AS failed,
                   r.report_data ->> 'report_uri' AS report_uri, r.created_at
            FROM data_drift_reports r
            WHERE r.deployment_id = :dep
            ORDER BY r.period_end DESC, r.id
            LIMIT :limit
            """
        ),
        {"dep": deployment_id, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]
