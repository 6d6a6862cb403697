"""Registry queries: models, versions, the production version, stage transitions and what gates read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from core.errors import NotFound
from db.models import (
    Alert,
    DataDriftReport,
    Deployment,
    Model,
    ModelStageTransition,
    ModelVersion,
    Organization,
    Project,
    User,
)


def project_by_slug(*, session: Session, slug: str) -> Project:
    """The live project `slug` of the session's organization; NotFound otherwise."""
    project = session.scalar(select(Project).where(Project.slug == slug, Project.deleted_at.is_(None)))
    if project is None:
        raise NotFound(f"unknown project '{slug}'")
    return project


def model_by_name(*, session: Session, project_id: uuid.UUID, name: str, lock: bool = False) -> Model:
    """The live model `name` of the project, optionally locked; NotFound otherwise.

    The lock is FOR NO KEY UPDATE: it serialises changes to the model (promotions) but not inserts that
    only reference it (a new version's foreign key takes KEY SHARE), so registering never waits on a promotion.
    """
    query = select(Model).where(Model.project_id == project_id, Model.name == name)
    if lock:
        query = query.with_for_update(key_share=True)
    model = session.scalar(query)
    if model is None:
        raise NotFound(f"unknown model '{name}'")
    if model.deleted_at is not None:
        raise NotFound(f"model '{name}' has been deleted")
    return model


def find_model(*, session: Session, project_id: uuid.UUID, name: str) -> Model | None:
    """The model `name` (live or deleted), or None."""
    return session.scalar(select(Model).where(Model.project_id == project_id, Model.name == name))


def version_by_name(*, session: Session, model: Model, version: str, lock: bool = False) -> ModelVersion:
    """The live version of `model` (optionally locked FOR NO KEY UPDATE); NotFound for an unknown or deleted one."""
    query = select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
    if lock:
        query = query.with_for_update(key_share=True)
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"model '{model.name}' has no version '{version}'")
    if found.deleted_at is not None:
        raise NotFound(f"version '{version}' of model '{model.name}' has been deleted")
    return found


def find_version(*, session: Session, model_id: uuid.UUID, version: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
    )


def production_versions(*, session: Session, model_id: uuid.UUID) -> list[ModelVersion]:
    """Versions of the model in production, deleted ones included (the partial unique index allows one)."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.stage == "production")
        )
    )


def count_live_models(*, session: Session) -> int:
    """Live models of the session's organization (RLS scopes the count)."""
    return session.scalar(select(func.count()).select_from(Model).where(Model.deleted_at.is_(None))) or 0


def organization_by_id(*, session: Session, organization_id: uuid.UUID, lock: bool = False) -> Organization:
    """The organization's row (its plan's limits); with `lock`, row-locked: concurrent registrations then create
    models one at a time, so none passes `max_models`."""
    query = select(Organization).where(Organization.id == organization_id)
    return session.scalar(query.with_for_update() if lock else query)


def insert_model(
    *,
    session: Session,
    organization_id: uuid.UUID,
    project_id: uuid.UUID,
    name: str,
    model_type: str | None,
    framework: str | None,
    task_type: str | None,
    tags: list[str] | None,
    created_by: uuid.UUID | None,
) -> uuid.UUID | None:
    """The new model's id; None when the project has one of that name already (created concurrently)."""
    return session.execute(
        insert(Model)
        .values(
            organization_id=organization_id,
            project_id=project_id,
            name=name,
            model_type=model_type,
            framework=framework,
            task_type=task_type,
            tags=tags,
            created_by=created_by,
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "project_id", "name"])
        .returning(Model.id)
    ).scalar_one_or_none()


def insert_version(*, session: Session, model_id: uuid.UUID, version: str, **values: Any) -> uuid.UUID | None:
    """The new version's id (`values`: its other columns); None when the model has that version already."""
    return session.execute(
        insert(ModelVersion)
        .values(model_id=model_id, version=version, **values)
        .on_conflict_do_nothing(index_elements=["model_id", "version"])
        .returning(ModelVersion.id)
    ).scalar_one_or_none()


def hours_in_current_stage(*, session: Session, version_id: uuid.UUID, stage: str) -> float | None:
    """Hours since the version's latest transition into `stage`; None when no transition records it."""
    entered = session.scalar(
        select(func.max(ModelStageTransition.created_at)).where(
            ModelStageTransition.model_version_id == version_id, ModelStageTransition.to_stage == stage
        )
    )
    if entered is None:
        return None
    return session.scalar(select(func.extract("epoch", func.now() - entered) / 3600.0))


def serving_deployments(*, session: Session, version_id: uuid.UUID, environment: str) -> list[Deployment]:
    """Live deployments of `environment` currently serving the version."""
    return list(
        session.scalars(
            select(Deployment).where(
                Deployment.model_version_id == version_id,
                Deployment.environment == environment,
                Deployment.deleted_at.is_(None),
            )
        )
    )


def production_deployments_of_model(*, session: Session, model_id: uuid.UUID) -> list[uuid.UUID]:
    """Live production deployments serving any version of the model: where a new production version rolls out."""
    return list(
        session.scalars(
            select(Deployment.id)
            .join(ModelVersion, ModelVersion.id == Deployment.model_version_id)
            .where(
                ModelVersion.model_id == model_id,
                Deployment.environment == "production",
                Deployment.deleted_at.is_(None),
            )
            .order_by(Deployment.name)
        )
    )


def unresolved_alerts(*, session: Session, deployment_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """Open or acknowledged alerts on the deployments, most severe first."""
    if not deployment_ids:
        return []
    rows = session.execute(
        select(Alert.id, Alert.severity, Alert.title, Alert.alert_type, Alert.status)
        .where(Alert.deployment_id.in_(deployment_ids), Alert.status.in_(("open", "acknowledged")))
        .order_by(Alert.triggered_at.desc())
    )
    return [dict(r._mapping) for r in rows]


def latest_drift_reports(*, session: Session, deployment_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Each deployment's latest drift report (by window end): verdict, window end, its age in hours and the
    columns that could not be tested (`incomplete_columns`, empty for a complete report)."""
    if not deployment_ids:
        return {}
    rows = session.execute(
        select(
            DataDriftReport.deployment_id,
            DataDriftReport.id,
            DataDriftReport.is_drift_detected,
            DataDriftReport.drift_score,
            DataDriftReport.period_end,
            (func.extract("epoch", func.now() - DataDriftReport.period_end) / 3600.0).label("age_hours"),
            DataDriftReport.report_data["status"].astext.label("status"),
            DataDriftReport.report_data["errors"].label("errors"),
        )
        .where(DataDriftReport.deployment_id.in_(deployment_ids))
        .distinct(DataDriftReport.deployment_id)
        .order_by(DataDriftReport.deployment_id, DataDriftReport.period_end.desc())
    )
    reports = {}
    for row in rows:
        report = dict(row._mapping)
        errors = report.pop("errors") or {}
        untested = sorted(errors) if isinstance(errors, dict) else []
        if report.pop("status") == "incomplete" and not untested:
            untested = ["(unknown)"]
        report["incomplete_columns"] = untested
        report["age_hours"] = float(report["age_hours"]) if report["age_hours"] is not None else None
        reports[report["deployment_id"]] = report
    return reports


def record_transition(
    *,
    session: Session,
    organization_id: uuid.UUID,
    version: ModelVersion,
    from_stage: str | None,
    to_stage: str,
    actor_user_id: uuid.UUID | None,
    api_key_id: uuid.UUID | None,
    reason: str | None,
    forced: bool = False,
    gate_results: list[dict[str, Any]] | None = None,
    at: datetime | None = None,
) -> uuid.UUID:
    """Insert one stage-transition row at `at` (default: the transaction's start, `now()`)."""
    values: dict[str, Any] = dict(
        organization_id=organization_id,
        model_id=version.model_id,
        model_version_id=version.id,
        from_stage=from_stage,
        to_stage=to_stage,
        actor_user_id=actor_user_id,
        api_key_id=api_key_id,
        reason=reason,
        forced=forced,
        gate_results=gate_results or [],
    )
    if at is not None:
        values["created_at"] = at
    row = ModelStageTransition(**values)
    session.add(row)
    session.flush()
    return row.id


def production_version_at(*, session: Session, model_id: uuid.UUID, at: datetime) -> dict[str, Any] | None:
    """Which version held production at `at`: its latest move into production at or before `at` that no later
    transition of the same version (at or before `at`) undid. One query over the stage transitions."""
    t = aliased(ModelStageTransition)
    later = aliased(ModelStageTransition)
    row = session.execute(
        select(ModelVersion.version, ModelVersion.id, t.created_at.label("since"))
        .join(ModelVersion, ModelVersion.id == t.model_version_id)
        .where(
            t.model_id == model_id,
            t.to_stage == "production",
            t.created_at <= at,
            ~exists().where(
                and_(
                    later.model_version_id == t.model_version_id,
                    later.created_at > t.created_at,
                    later.created_at <= at,
                )
            ),
        )
        .order_by(t.created_at.desc())
        .limit(1)
    ).one_or_none()
    return dict(row._mapping) if row else None


def stage_history(
    *, session: Session, model_id: uuid.UUID, version_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Every transition of the model (or one version), oldest first."""
    query = (
        select(
            ModelStageTransition.created_at,
            ModelVersion.version,
            ModelStageTransition.from_stage,
            ModelStageTransition.to_stage,
            User.email.label("actor"),
            ModelStageTransition.api_key_id,
            ModelStageTransition.reason,
            ModelStageTransition.forced,
        )
        .join(ModelVersion, ModelVersion.id == ModelStageTransition.model_version_id)
        .outerjoin(User, User.id == ModelStageTransition.actor_user_id)
        .where(ModelStageTransition.model_id == model_id)
        .order_by(ModelStageTransition.created_at, text("to_stage = 'production'"))
    )
    if version_id is not None:
        query = query.where(ModelStageTransition.model_version_id == version_id)
    return [dict(r._mapping) for r in session.execute(query)]


def set_stage(*, session: Session, version_id: uuid.UUID, stage: str) -> None:
    """Move a version to `stage` (its transition row is the caller's, in the same transaction)."""
    session.execute(update(ModelVersion).where(ModelVersion.id == version_id).values(stage=stage))


def version_by_id(*, session: Session, version_id: uuid.UUID) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.id == version_id))


def lock_model(*, session: Session, model_id: uuid.UUID) -> None:
    """The model's row lock: registry changes of one model (promotions, restores) happen one at a time."""
    session.execute(select(Model.id).where(Model.id == model_id).with_for_update())


def stage_before_production(*, session: Session, version_id: uuid.UUID) -> str | None:
    """The stage the version held before its latest move into production."""
    return session.scalar(
        select(ModelStageTransition.from_stage)
        .where(ModelStageTransition.model_version_id == version_id, ModelStageTransition.to_stage == "production")
        .order_by(ModelStageTransition.created_at.desc())
        .limit(1)
    )


def set_lock_timeout(*, session: Session, timeout: str) -> None:
    """Fail fast instead of queueing behind a long lock (the transaction's own setting)."""
    session.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": timeout})


def clock_now(*, session: Session) -> datetime:
    """The wall clock now (`clock_timestamp()`, not the transaction's start): taken once a lock is held, it
    orders changes that waited for that lock as they really happened."""
    return session.scalar(select(func.clock_timestamp()))
