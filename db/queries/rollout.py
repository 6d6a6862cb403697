"""Rollout queries: deployments, their history (the unfinished row is the rollout lock), anomalies, alerts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from core.errors import NotFound
from db.models import Alert, Deployment, DeploymentHistory, Model, ModelMonitoring, ModelVersion, Project, User

UNFINISHED = ("pending", "in_progress")
SERVING_ACTIONS = ("deploy", "update", "rollback")


def set_lock_timeout(*, session: Session, timeout: str) -> None:
    """Wait at most `timeout` for a row lock in this transaction (a busy deployment fails fast, never queues)."""
    session.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": timeout})


def deployment_by_name(
    *, session: Session, project_id: uuid.UUID, name: str, environment: str, lock: bool = False
) -> Deployment:
    """The live deployment `name` of the project in `environment`; NotFound otherwise."""
    query = select(Deployment).where(
        Deployment.project_id == project_id, Deployment.name == name, Deployment.environment == environment
    )
    if lock:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None or found.deleted_at is not None:
        raise NotFound(f"no deployment '{name}' ({environment}) in this project")
    return found


def deployment_by_id(*, session: Session, deployment_id: uuid.UUID, lock: bool = False) -> Deployment:
    query = select(Deployment).where(Deployment.id == deployment_id)
    if lock:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None or found.deleted_at is not None:
        raise NotFound(f"no deployment {deployment_id}")
    return found


def project_by_id(*, session: Session, project_id: uuid.UUID) -> Project:
    return session.execute(select(Project).where(Project.id == project_id)).scalar_one()


def version_with_model(*, session: Session, version_id: uuid.UUID) -> tuple[ModelVersion, Model]:
    """A version and its model; NotFound when neither is visible."""
    row = session.execute(
        select(ModelVersion, Model).join(Model, Model.id == ModelVersion.model_id).where(ModelVersion.id == version_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no model version {version_id}")
    return row[0], row[1]


def version_of_model(*, session: Session, model_id: uuid.UUID, version: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
    )


def versions_named(*, session: Session, project_id: uuid.UUID, version: str) -> list[tuple[ModelVersion, Model]]:
    """Every version `version` of the project's live models (a deployment's model decides between them)."""
    rows = session.execute(
        select(ModelVersion, Model)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.project_id == project_id, Model.deleted_at.is_(None), ModelVersion.version == version)
    )
    return [(r[0], r[1]) for r in rows]


def unfinished(*, session: Session, deployment_id: uuid.UUID) -> dict[str, Any] | None:
    """The deployment's pending/in-progress history row (at most one, by a unique index), with whether its lease
    has expired by the database clock, and who started it."""
    row = session.execute(
        select(
            DeploymentHistory.id,
            DeploymentHistory.action,
            DeploymentHistory.status,
            DeploymentHistory.model_version_id,
            DeploymentHistory.started_at,
            DeploymentHistory.expires_at,
            DeploymentHistory.details,
            User.email.label("performed_by"),
            (func.coalesce(DeploymentHistory.expires_at, DeploymentHistory.started_at) < func.now()).label("stale"),
        )
        .outerjoin(User, User.id == DeploymentHistory.performed_by)
        .where(DeploymentHistory.deployment_id == deployment_id, DeploymentHistory.status.in_(UNFINISHED))
    ).one_or_none()
    return dict(row._mapping) if row else None


def last_completed_version(
    *, session: Session, deployment_id: uuid.UUID, other_than: uuid.UUID | None = None
) -> uuid.UUID | None:
    """The version of the deployment's latest completed deploy/update/rollback (optionally a different one than
    `other_than`), or None."""
    query = (
        select(DeploymentHistory.model_version_id)
        .where(
            DeploymentHistory.deployment_id == deployment_id,
            DeploymentHistory.status == "completed",
            DeploymentHistory.action.in_(SERVING_ACTIONS),
        )
        .order_by(DeploymentHistory.completed_at.desc().nulls_last(), DeploymentHistory.started_at.desc())
        .limit(1)
    )
    if other_than is not None:
        query = query.where(DeploymentHistory.model_version_id != other_than)
    return session.scalar(query)


def recorded_previous(*, session: Session, deployment_id: uuid.UUID, version_id: uuid.UUID) -> uuid.UUID | None:
    """The version a completed rollout of `version_id` replaced, as its history row recorded it (covers versions
    deployed before the rollout flows kept history)."""
    value = session.scalar(
        select(DeploymentHistory.details["previous_version_id"].astext)
        .where(
            DeploymentHistory.deployment_id == deployment_id,
            DeploymentHistory.model_version_id == version_id,
            DeploymentHistory.status == "completed",
            DeploymentHistory.action.in_(("deploy", "update")),
        )
        .order_by(DeploymentHistory.completed_at.desc())
        .limit(1)
    )
    return uuid.UUID(value) if value else None


def insert_history(
    *,
    session: Session,
    deployment_id: uuid.UUID,
    model_version_id: uuid.UUID,
    action: str,
    status: str,
    performed_by: uuid.UUID,
    details: dict[str, Any],
    lease_seconds: float | None = None,
    error_message: str | None = None,
) -> uuid.UUID:
    """Insert a history row; an unfinished one gets a lease of `lease_seconds` from now, a finished one its
    `completed_at`."""
    values: dict[str, Any] = dict(
        deployment_id=deployment_id,
        model_version_id=model_version_id,
        action=action,
        status=status,
        performed_by=performed_by,
        details=details,
        error_message=error_message,
    )
    if status in UNFINISHED:
        values["expires_at"] = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds or 0)
    else:
        values["completed_at"] = func.now()
    return session.execute(insert(DeploymentHistory).values(**values).returning(DeploymentHistory.id)).scalar_one()


def renew_lease(
    *, session: Session, history_id: uuid.UUID, lease_seconds: float, details: dict[str, Any]
) -> datetime | None:
    """Extend an in-progress row's lease and merge `details` in; the database time of the renewal, or None when
    the row is no longer in progress (another run presumed this one dead and recovered the deployment)."""
    return session.execute(
        update(DeploymentHistory)
        .where(DeploymentHistory.id == history_id, DeploymentHistory.status.in_(UNFINISHED))
        .values(
            expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds),
            details=_merged(details),
        )
        .returning(func.now())
    ).scalar_one_or_none()


def finish_history(
    *,
    session: Session,
    history_id: uuid.UUID,
    status: str,
    error_message: str | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Mark an unfinished row `completed` or `failed`; False when it was no longer unfinished."""
    values: dict[str, Any] = dict(status=status, completed_at=func.now(), expires_at=None, error_message=error_message)
    if details:
        values["details"] = _merged(details)
    result = session.execute(
        update(DeploymentHistory)
        .where(DeploymentHistory.id == history_id, DeploymentHistory.status.in_(UNFINISHED))
        .values(**values)
        .returning(DeploymentHistory.id)
    )
    return result.scalar_one_or_none() is not None


def _merged(details: dict[str, Any]) -> Any:
    """The row's details with `details`' keys added or replaced (jsonb `||`)."""
    return DeploymentHistory.details.op("||")(bindparam(None, details, type_=JSONB))


def update_deployment(*, session: Session, deployment_id: uuid.UUID, **values: Any) -> None:
    session.execute(update(Deployment).where(Deployment.id == deployment_id).values(**values))


def now() -> Any:
    """The transaction's `now()`, as a value for `update_deployment` (the database evaluates it)."""
    return func.now()


def anomalies_since(*, session: Session, deployment_id: uuid.UUID, since: datetime) -> int:
    """Monitoring points of the deployment recorded since `since` that are anomalous: flagged, or outside
    their own thresholds."""
    return (
        session.scalar(
            select(func.count())
            .select_from(ModelMonitoring)
            .where(
                ModelMonitoring.deployment_id == deployment_id,
                ModelMonitoring.recorded_at >= since,
                (ModelMonitoring.is_anomaly.is_(True))
                | (ModelMonitoring.value < ModelMonitoring.threshold_min)
                | (ModelMonitoring.value > ModelMonitoring.threshold_max),
            )
        )
        or 0
    )


def open_alert(
    *, session: Session, organization_id: uuid.UUID, deployment_id: uuid.UUID, severity: str, title: str, message: str
) -> uuid.UUID:
    return session.execute(
        insert(Alert)
        .values(
            organization_id=organization_id,
            deployment_id=deployment_id,
            alert_type="custom",
            severity=severity,
            title=title[:255],
            message=message,
        )
        .returning(Alert.id)
    ).scalar_one()


def list_deployments(*, session: Session) -> list[dict[str, Any]]:
    """Every live deployment of the session's organization with its version and its latest history row."""
    latest = (
        select(
            DeploymentHistory.deployment_id,
            DeploymentHistory.action,
            DeploymentHistory.status,
            DeploymentHistory.started_at,
            DeploymentHistory.details,
            func.row_number()
            .over(partition_by=DeploymentHistory.deployment_id, order_by=DeploymentHistory.started_at.desc())
            .label("n"),
        )
    ).subquery()
    rows = session.execute(
        select(
            Deployment.id,
            Project.slug.label("project"),
            Deployment.name,
            Deployment.environment,
            Deployment.status,
            Model.name.label("model"),
            ModelVersion.version,
            Deployment.deployed_at,
            latest.c.action.label("last_action"),
            latest.c.status.label("last_status"),
            latest.c.started_at.label("last_at"),
            latest.c.details.label("last_details"),
        )
        .join(Project, Project.id == Deployment.project_id)
        .join(ModelVersion, ModelVersion.id == Deployment.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .outerjoin(latest, (latest.c.deployment_id == Deployment.id) & (latest.c.n == 1))
        .where(Deployment.deleted_at.is_(None))
        .order_by(Project.slug, Deployment.name, Deployment.environment)
    )
    return [dict(r._mapping) for r in rows]


def history_of(*, session: Session, deployment_id: uuid.UUID) -> list[dict[str, Any]]:
    """The deployment's history, newest first."""
    rows = session.execute(
        select(
            DeploymentHistory.id,
            DeploymentHistory.action,
            DeploymentHistory.status,
            ModelVersion.version,
            User.email.label("performed_by"),
            DeploymentHistory.started_at,
            DeploymentHistory.completed_at,
            DeploymentHistory.error_message,
            DeploymentHistory.details,
        )
        .join(ModelVersion, ModelVersion.id == DeploymentHistory.model_version_id)
        .outerjoin(User, User.id == DeploymentHistory.performed_by)
        .where(DeploymentHistory.deployment_id == deployment_id)
        .order_by(DeploymentHistory.started_at.desc(), DeploymentHistory.created_at.desc())
    )
    return [dict(r._mapping) for r in rows]
