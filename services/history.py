"""Registry history: the stage transitions of a model and which version held production at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from db.queries import registry as q
from db.session import session_scope
from services.access import Action, Principal, require


def model_history(principal: Principal, *, project: str, model: str) -> list[dict[str, Any]]:
    """Every stage transition of the model, oldest first."""
    with session_scope(principal.organization_id) as session:
        found_project = q.project_by_slug(session=session, slug=project)
        require(principal, Action.MODEL_READ, found_project.id)
        found = q.model_by_name(session=session, project_id=found_project.id, name=model)
        return q.stage_history(session=session, model_id=found.id)


def production_at(principal: Principal, *, project: str, model: str, at: datetime) -> dict[str, Any] | None:
    """The version in production at `at` (with the time it got there), or None."""
    with session_scope(principal.organization_id) as session:
        found_project = q.project_by_slug(session=session, slug=project)
        require(principal, Action.MODEL_READ, found_project.id)
        found = q.model_by_name(session=session, project_id=found_project.id, name=model)
        return q.production_version_at(session=session, model_id=found.id, at=at)
