"""Reads for people: the outbox events and drift reports the flows wrote, as the caller may see them."""

from __future__ import annotations

from typing import Any

from core.errors import PermissionDenied
from db.queries import listings as q
from db.queries.metrics import deployment_by_ref
from db.session import session_scope
from services.access import Action, Principal, is_allowed, require


def read_events(principal: Principal, *, pending: bool, limit: int) -> list[dict[str, Any]]:
    """The organization's events (members with an organization role), or those of the caller's projects."""
    projects = None
    if not is_allowed(principal, Action.MODEL_READ):
        projects = [p for p in principal.project_roles if is_allowed(principal, Action.MODEL_READ, p)]
        if not projects:
            raise PermissionDenied(f"{principal.display} may not read the events of {principal.organization_slug}")
    with session_scope(principal.organization_id) as session:
        return q.list_events(session=session, pending=pending, limit=limit, project_ids=projects)


def read_drift_reports(
    principal: Principal, *, project: str, deployment: str, environment: str, limit: int
) -> list[dict[str, Any]]:
    """A deployment's drift reports, for a reader of its project."""
    with session_scope(principal.organization_id) as session:
        deployment_id, project_id = deployment_by_ref(
            session=session, project=project, name=deployment, environment=environment
        )
        require(principal, Action.MODEL_READ, project_id, what=f"{project}/{deployment}")
        return q.list_drift_reports(session=session, deployment_id=deployment_id, limit=limit)
