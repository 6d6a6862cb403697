"""Monitoring: performance points, data-drift reports and alerts (spec section 6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.vocabulary import ALERT_SEVERITIES, AlertStatus, AlertType, values
from db.base import Base, check_in, created_at, jsonb_object, updated_at, uuid_pk

ALERT_TYPES = values(AlertType)
SEVERITIES = tuple(s.value for s in ALERT_SEVERITIES)
ALERT_STATUSES = values(AlertStatus)


class ModelMonitoring(Base):
    """One monitoring point of a deployment.

    Addition to the spec, for tenancy: `organization_id`, copied from the deployment by a database trigger on
    every insert (and deployment change), so rows written by model servers stay correct without knowing it.
    Row-level security on this, the largest and hottest table, then compares a column instead of looking up
    the deployment per row (measured in `benchmarks/bench_rls.py`); `(organization_id, recorded_at)` serves
    organization-wide window scans.
    """

    __tablename__ = "model_monitoring"
    __table_args__ = (
        Index(None, "deployment_id", "metric_name", "recorded_at"),
        Index("idx_monitoring_deployment_time", "deployment_id", "recorded_at"),
        Index(None, "organization_id", "recorded_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    # set by the trigger from deployments.organization_id; whatever a writer sends is replaced
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    metric_name: Mapped[str] = mapped_column(String(100))  # accuracy, latency, throughput
    value: Mapped[float] = mapped_column(Double)
    threshold_min: Mapped[float | None] = mapped_column(Double)
    threshold_max: Mapped[float | None] = mapped_column(Double)
    is_anomaly: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    recorded_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime | None] = created_at()


class DataDriftReport(Base):
    """A drift analysis of one deployment over one window.

    Addition to the spec, for the drift detection flow: a unique key on (deployment, period_start, period_end),
    so a rerun for the same window updates its report instead of adding a second one.
    """

    __tablename__ = "data_drift_reports"
    __table_args__ = (
        Index(None, "deployment_id", "period_end"),
        UniqueConstraint("deployment_id", "period_start", "period_end"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    drift_score: Mapped[float] = mapped_column(Double)  # share of drifted columns, 0-1
    drift_threshold: Mapped[float | None] = mapped_column(Double, server_default=text("0.1"))
    is_drift_detected: Mapped[bool] = mapped_column(Boolean)
    feature_drift: Mapped[dict[str, Any] | None] = jsonb_object()  # per-feature results
    report_data: Mapped[dict[str, Any] | None] = jsonb_object()  # the rest of the analysis
    period_start: Mapped[datetime] = mapped_column()
    period_end: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()


class Alert(Base):
    """An alert on a deployment (or organization-wide).

    Additions to the spec, for the drift detection and metric aggregation flows: at most one unresolved
    `data_drift` alert per deployment, and one per deployment and metric alert type (partial unique indexes),
    so a deployment's alert is updated while it lasts, never duplicated.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        check_in("alert_type", ALERT_TYPES),
        check_in("severity", SEVERITIES),
        check_in("status", ALERT_STATUSES),
        Index("idx_alerts_org_status", "organization_id", "status"),
        Index(
            "uq_alerts__one_unresolved_drift_alert",
            "deployment_id",
            unique=True,
            postgresql_where=text("alert_type = 'data_drift' AND status <> 'resolved'"),
        ),
        Index(
            "uq_alerts__one_unresolved_metric_alert",
            "deployment_id",
            "alert_type",
            unique=True,
            postgresql_where=text(
                "status <> 'resolved' AND alert_type IN ('high_latency', 'error_rate', 'performance_degradation')"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    alert_type: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(20), server_default="open")
    triggered_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    acknowledged_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()


ROLLUP_GRANULARITIES = ("hour", "day")


class ModelMonitoringRollup(Base):
    """Hourly and daily statistics of one deployment's metric, computed from `model_monitoring` in SQL.

    Addition to the spec, for the metric aggregation flow (and the retention flow, which deletes raw points
    only where their rollups are complete): "detailed metrics for 90 days, aggregated for 1 year". Other
    services read it, so the column names are a contract (README, "Metric rollups"). `bucket_start` is the
    UTC-aligned start of the hour or day; percentiles are exact (`percentile_cont` over the bucket's points).
    `organization_id` is copied from the deployment, like `model_monitoring`, for row-level security.
    """

    __tablename__ = "model_monitoring_rollups"
    __table_args__ = (
        check_in("granularity", ROLLUP_GRANULARITIES),
        UniqueConstraint(
            "deployment_id", "metric_name", "granularity", "bucket_start", name="uq_model_monitoring_rollups__bucket"
        ),
        Index("ix_model_monitoring_rollups__org_bucket", "organization_id", "granularity", "bucket_start"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    metric_name: Mapped[str] = mapped_column(String(100))
    granularity: Mapped[str] = mapped_column(String(20))
    bucket_start: Mapped[datetime] = mapped_column()
    sample_count: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[float] = mapped_column(Double)
    value_min: Mapped[float] = mapped_column(Double)
    value_max: Mapped[float] = mapped_column(Double)
    value_mean: Mapped[float] = mapped_column(Double)
    p50: Mapped[float] = mapped_column(Double)
    p95: Mapped[float] = mapped_column(Double)
    p99: Mapped[float] = mapped_column(Double)
    anomaly_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()


class ModelMonitoringInvalidation(Base):
    """An hour bucket of one deployment's metric whose rollups must be recomputed.

    Addition to the spec, for the metric aggregation flow: statement-level triggers on `model_monitoring`
    write one row per touched (deployment, metric, UTC hour) in the writer's own transaction, so a point that
    commits late is never skipped; `aggregate-metrics` claims rows, recomputes those buckets and deletes the
    claimed rows in one transaction. Retention reads it too: raw points of a pending hour are never deleted.
    """

    __tablename__ = "model_monitoring_invalidations"
    __table_args__ = (Index("ix_model_monitoring_invalidations__org_id", "organization_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    metric_name: Mapped[str] = mapped_column(String(100))
    bucket_start: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()


class MonitoringAggregationState(Base):
    """Per organization: when the full backfill of its rollups finished, and the last aggregation run.

    Addition to the spec, for the metric aggregation flow: points written before the invalidation triggers
    existed have no invalidation rows, so each organization is backfilled once from its raw points.
    """

    __tablename__ = "model_monitoring_aggregation_state"
    __table_args__ = (UniqueConstraint("organization_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    backfilled_at: Mapped[datetime | None] = mapped_column()
    last_run_at: Mapped[datetime | None] = mapped_column()
