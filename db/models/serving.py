"""Deployments and their history (spec section 5)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.vocabulary import DeploymentStatus, Environment, HistoryAction, HistoryStatus, values
from db.base import Base, check_in, created_at, deleted_at, jsonb_object, updated_at, uuid_pk

ENVIRONMENTS = values(Environment)
DEPLOYMENT_STATUSES = values(DeploymentStatus)
HISTORY_ACTIONS = values(HistoryAction)
HISTORY_STATUSES = values(HistoryStatus)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("organization_id", "project_id", "name", "environment"),
        check_in("environment", ENVIRONMENTS),
        check_in("status", DEPLOYMENT_STATUSES),
        Index(
            "idx_deployments_org_status",
            "organization_id",
            "status",
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(50))
    endpoint_url: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str | None] = mapped_column(String(50), server_default="pending")
    instance_type: Mapped[str | None] = mapped_column(String(100), server_default="small")
    min_instances: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    max_instances: Mapped[int | None] = mapped_column(Integer, server_default=text("10"))
    auto_scaling: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    # environment variables, resource limits, monitoring configuration (drift, thresholds)
    deployment_config: Mapped[dict[str, Any] | None] = jsonb_object()
    health_check_path: Mapped[str | None] = mapped_column(String(255), server_default="/health")
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    deployed_at: Mapped[datetime | None] = mapped_column()
    terminated_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class DeploymentHistory(Base):
    """One change of a deployment: deploy, update, rollback or terminate, and how it ended.

    Additions to the spec, for the rollout flows (revision 0013): `expires_at`, until when an unfinished
    (`pending`/`in_progress`) row's process is presumed alive (renewed per step; past it the next rollout or
    rollback recovers the deployment), `details` (steps, the step reached, the version replaced, the registry
    state to restore for a rollout started by a promotion), and a partial unique index allowing one unfinished
    row per deployment: the persisted half of "one rollout per deployment at a time".
    """

    __tablename__ = "deployment_history"
    __table_args__ = (
        check_in("action", HISTORY_ACTIONS),
        check_in("status", HISTORY_STATUSES),
        Index(
            "uq_deployment_history__one_unfinished",
            "deployment_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'in_progress')"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    performed_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()
    expires_at: Mapped[datetime | None] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
