"""Experiments, their runs and the runs' time-series metrics (spec section 4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Double, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from core.vocabulary import RunStatus, values
from db.base import SEARCH_VECTOR, Base, check_in, created_at, deleted_at, jsonb_object, updated_at, uuid_pk

RUN_STATUSES = values(RunStatus)


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        check_in("status", RUN_STATUSES),
        Index("idx_experiments_project", "project_id", postgresql_where=text("deleted_at IS NULL")),
        Index(
            "idx_experiments_search",
            SEARCH_VECTOR,
            postgresql_using="gin",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # NULL for exploratory experiments
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(50), server_default="running")
    config: Mapped[dict[str, Any] | None] = jsonb_object()  # hyperparameters and configuration
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class ExperimentRun(Base):
    __tablename__ = "experiment_runs"
    __table_args__ = (check_in("status", RUN_STATUSES),)

    id: Mapped[uuid.UUID] = uuid_pk()
    experiment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    run_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(50), server_default="running")
    parameters: Mapped[dict[str, Any] | None] = jsonb_object()
    metrics: Mapped[dict[str, Any] | None] = jsonb_object()  # final metrics
    artifacts: Mapped[dict[str, Any] | None] = jsonb_object()  # paths to plots, models, ...
    logs: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column()
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()


class RunMetric(Base):
    """One point of a training curve.

    The spec lists `INDEX(run_id, metric_name, step)` inline and again as `idx_run_metrics_lookup`:
    the two are the same index, so it exists once, under the spec's name.
    """

    __tablename__ = "run_metrics"
    __table_args__ = (Index("idx_run_metrics_lookup", "run_id", "metric_name", "step"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiment_runs.id", ondelete="CASCADE"))
    metric_name: Mapped[str] = mapped_column(String(100))  # loss, accuracy, val_loss
    value: Mapped[float] = mapped_column(Double)
    step: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # epoch or iteration
    timestamp: Mapped[datetime | None] = mapped_column(server_default=func.now())
