"""Model registry: models and their versions (spec section 3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.vocabulary import Stage, values
from db.base import SEARCH_VECTOR, Base, check_in, created_at, deleted_at, jsonb_object, updated_at, uuid_pk

MODEL_STAGES = values(Stage)


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("organization_id", "project_id", "name"),
        Index(
            "idx_models_org_project",
            "organization_id",
            "project_id",
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "idx_models_search",
            SEARCH_VECTOR,
            postgresql_using="gin",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    model_type: Mapped[str] = mapped_column(String(100))  # classification, regression, llm, custom
    framework: Mapped[str] = mapped_column(String(100))  # scikit-learn, tensorflow, pytorch, xgboost
    task_type: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # `metadata` is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any] | None] = jsonb_object("metadata")
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class ModelVersion(Base):
    """A registered version of a model.

    Additions to the spec, for the promotion flow: `artifact_sha256` (the artifact's checksum, recorded at
    registration so re-registering the same artifact is a no-op and a different one a conflict) and the
    partial unique index that allows at most one production version per model. For the retention flow:
    `artifact_purged_at`, when retention deleted the artifact from the store (1 year after retirement), so the
    row kept for lineage says its `model_file_path` no longer resolves, and the purge is not attempted again.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        check_in("stage", MODEL_STAGES),
        Index("idx_model_versions_stage", "model_id", "stage", postgresql_where=text("deleted_at IS NULL")),
        Index(
            "uq_model_versions__one_production",
            "model_id",
            unique=True,
            postgresql_where=text("stage = 'production'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(50))
    stage: Mapped[str | None] = mapped_column(String(50), server_default="development")
    model_file_path: Mapped[str] = mapped_column(String(500))  # artifact-store URI
    model_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    artifact_purged_at: Mapped[datetime | None] = mapped_column()
    requirements: Mapped[str | None] = mapped_column(Text)  # pip freeze output
    performance_metrics: Mapped[dict[str, Any] | None] = jsonb_object()
    training_metrics: Mapped[dict[str, Any] | None] = jsonb_object()
    model_schema: Mapped[dict[str, Any] | None] = jsonb_object()
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class ModelStageTransition(Base):
    """One row per stage transition of a model version (an addition to the spec).

    Written by the promotion flow in the same transaction as the stage change (and by rollout when it
    restores a registry state), so "which version was in production on 2026-03-01" is one query and retention
    can tell when a version retired. `from_stage` is NULL for the registration itself.
    """

    __tablename__ = "model_stage_transitions"
    __table_args__ = (
        CheckConstraint(
            "from_stage IS NULL OR from_stage IN ('development', 'staging', 'production', 'archived')",
            name="from_stage",
        ),
        check_in("to_stage", MODEL_STAGES),
        Index(None, "model_id", "created_at"),
        Index(None, "model_version_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(50))
    to_stage: Mapped[str] = mapped_column(String(50))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    gate_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
