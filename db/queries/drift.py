"""Drift detection in SQL: the organizations and deployments to analyse, the report upsert, the one open alert."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Alert, DataDriftReport, Deployment, Organization, Project


def live_organizations(*, session: Session, slug: str | None) -> list[Organization]:
    """Every live organization by slug (or the one named); cross-organization: the maintenance session."""
    query = select(Organization).where(Organization.deleted_at.is_(None)).order_by(Organization.slug)
    if slug:
        query = query.where(Organization.slug == slug)
    return list(session.scalars(query))


def monitored_deployments(*, session: Session, ref: tuple[str, str, str] | None = None) -> list[tuple[Deployment, str]]:
    """(deployment, project slug) of the session's active deployments with drift configured; only the
    (project, name, environment) `ref` when given."""
    query = (
        select(Deployment, Project.slug)
        .join(Project, Project.id == Deployment.project_id)
        .where(
            Deployment.deleted_at.is_(None),
            Project.deleted_at.is_(None),
            Deployment.status == "active",
            Deployment.deployment_config["monitoring"]["drift"].is_not(None),
        )
        .order_by(Project.slug, Deployment.name, Deployment.environment)
    )
    if ref:
        query = query.where(Project.slug == ref[0], Deployment.name == ref[1], Deployment.environment == ref[2])
    return [(d, project) for d, project in session.execute(query).all()]


def upsert_report(
    *,
    session: Session,
    deployment_id: uuid.UUID,
    period_start: datetime,
    period_end: datetime,
    values: dict[str, Any],
) -> tuple[uuid.UUID, dict[str, Any] | None]:
    """The window's one report (unique per deployment and window): inserted, or updated by a rerun. Returns its
    id and, for a rerun, what the report held before (`values`' keys), read under the row lock the update takes."""
    window = (
        DataDriftReport.deployment_id == deployment_id,
        DataDriftReport.period_start == period_start,
        DataDriftReport.period_end == period_end,
    )
    columns = [getattr(DataDriftReport, key) for key in values]
    before = session.execute(select(*columns).where(*window).with_for_update()).first()
    report_id = session.execute(
        insert(DataDriftReport)
        .values(deployment_id=deployment_id, period_start=period_start, period_end=period_end, **values)
        .on_conflict_do_update(
            index_elements=["deployment_id", "period_start", "period_end"],
            set_={**values, "created_at": text("now()")},
        )
        .returning(DataDriftReport.id)
    ).scalar_one()
    return report_id, (dict(zip(values, before, strict=True)) if before is not None else None)


def upsert_open_drift_alert(
    *, session: Session, organization_id: uuid.UUID, deployment_id: uuid.UUID, values: dict[str, Any]
) -> uuid.UUID:
    """The deployment's one unresolved `data_drift` alert, updated (an acknowledgement stays) or opened."""
    existing = session.scalar(
        select(Alert)
        .where(Alert.deployment_id == deployment_id, Alert.alert_type == "data_drift", Alert.status != "resolved")
        .with_for_update()
    )
    if existing is not None:
        for key, value in values.items():
            setattr(existing, key, value)
        session.flush()
        return existing.id
    return session.execute(
        insert(Alert)
        .values(organization_id=organization_id, deployment_id=deployment_id, alert_type="data_drift", **values)
        .on_conflict_do_update(
            index_elements=["deployment_id"],
            index_where=text("alert_type = 'data_drift' AND status <> 'resolved'"),
            set_=values,
        )
        .returning(Alert.id)
    ).scalar_one()
