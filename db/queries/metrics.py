"""Metric rollups in SQL: claim invalidated buckets, recompute them exactly, read rollups, summarise runs.

Every statistic is computed by PostgreSQL from raw `model_monitoring` points (`percentile_cont` for exact
percentiles); Python only ever sees bucket keys and finished rollups. Functions take `session` keyword-only
and never commit: the caller's transaction makes a claim and its recomputation one atomic step.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import NotFound

# Points written before the finite-value CHECK existed may still hold NaN or infinities: never aggregate them.
FINITE = "m.value NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)"
STATS = """
    count(*) AS sample_count,
    sum(m.value) AS value_sum,
    min(m.value) AS value_min,
    max(m.value) AS value_max,
    avg(m.value) AS value_mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY m.value) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value) AS p95,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY m.value) AS p99,
    count(*) FILTER (WHERE m.is_anomaly) AS anomaly_count
"""
COLUMNS = (
    "deployment_id, organization_id, metric_name, granularity, bucket_start, sample_count, value_sum, "
    "value_min, value_max, value_mean, p50, p95, p99, anomaly_count"
)
# A rollup never shrinks: raw points leave only through retention (which keeps their rollups) or with their
# deployment (which cascades the rollups too), so a recomputation over fewer points than the rollup already
# counts means the raw points are gone, not that the bucket changed. Unchanged buckets are not rewritten.
UPSERT = """
ON CONFLICT (deployment_id, metric_name, granularity, bucket_start) DO UPDATE SET
    sample_count = EXCLUDED.sample_count, value_sum = EXCLUDED.value_sum, value_min = EXCLUDED.value_min,
    value_max = EXCLUDED.value_max, value_mean = EXCLUDED.value_mean, p50 = EXCLUDED.p50, p95 = EXCLUDED.p95,
    p99 = EXCLUDED.p99, anomaly_count = EXCLUDED.anomaly_count
WHERE EXCLUDED.sample_count >= model_monitoring_rollups.sample_count
  AND (model_monitoring_rollups.sample_count, model_monitoring_rollups.value_sum, model_monitoring_rollups.value_min,
       model_monitoring_rollups.value_max, model_monitoring_rollups.p50, model_monitoring_rollups.p95,
       model_monitoring_rollups.p99, model_monitoring_rollups.anomaly_count)
      IS DISTINCT FROM (EXCLUDED.sample_count, EXCLUDED.value_sum, EXCLUDED.value_min, EXCLUDED.value_max,
       EXCLUDED.p50, EXCLUDED.p95, EXCLUDED.p99, EXCLUDED.anomaly_count)
"""
WIDTH = {"hour": "1 hour", "day": "1 day"}


@dataclass(frozen=True)
class BucketKey:
    """One (deployment, metric, UTC bucket start) to recompute."""

    deployment_id: uuid.UUID
    metric_name: str
    bucket_start: datetime


def try_lock_organization(*, session: Session, organization_id: uuid.UUID) -> bool:
    """Take the transaction-scoped aggregation lock of an organization; False when another run holds it.

    One run at a time per organization: two runs recomputing one bucket from different snapshots could
    otherwise leave the older result last.
    """
    return bool(
        session.scalar(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended('aggregate-metrics:' || :org, 0))"),
            {"org": str(organization_id)},
        )
    )


def set_work_mem(*, session: Session, work_mem: str = "64MB") -> None:
    """Sort each bucket's points in memory (ordered-set aggregates sort per group)."""
    session.execute(text("SELECT set_config('work_mem', :wm, true)"), {"wm": work_mem})


def claim_invalidations(*, session: Session, organization_id: uuid.UUID, limit: int) -> list[BucketKey]:
    """Delete up to `limit` pending invalidations of the organization and return their distinct hour buckets.

    The rows stay locked, and reappear if the transaction rolls back, so a killed run loses nothing; other
    runs skip them.
    """
    rows = session.execute(
        text(
            """
            WITH claimed AS (
                DELETE FROM model_monitoring_invalidations
                WHERE id IN (
                    SELECT id FROM model_monitoring_invalidations
                    WHERE organization_id = :org ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
                )
                RETURNING deployment_id, metric_name, bucket_start
            )
            SELECT DISTINCT deployment_id, metric_name, bucket_start FROM claimed
            """
        ),
        {"org": organization_id, "limit": limit},
    )
    return [BucketKey(r.deployment_id, r.metric_name, r.bucket_start) for r in rows]


def recompute_buckets(
    *, session: Session, organization_id: uuid.UUID, granularity: str, keys: Sequence[BucketKey]
) -> int:
    """Recompute the given buckets from their raw points; returns the rollup rows written."""
    if not keys:
        return 0
    result = session.execute(
        text(
            f"""
            WITH t AS (
                SELECT * FROM unnest(CAST(:deployments AS uuid[]), CAST(:metrics AS text[]),
                                     CAST(:starts AS timestamptz[])) AS t(deployment_id, metric_name, bucket_start)
            )
            INSERT INTO model_monitoring_rollups ({COLUMNS})
            SELECT t.deployment_id, :org, t.metric_name, CAST(:granularity AS text), t.bucket_start, s.*
            FROM t
            -- LATERAL: one index range scan per bucket (a hash join would read the whole table)
            CROSS JOIN LATERAL (
                SELECT {STATS}
                FROM model_monitoring m
                WHERE m.deployment_id = t.deployment_id AND m.metric_name = t.metric_name
                  AND m.recorded_at >= t.bucket_start AND m.recorded_at < t.bucket_start + CAST(:width AS interval)
                  AND {FINITE}
            ) s
            WHERE s.sample_count > 0
            {UPSERT}
            """
        ),
        {
            "deployments": [k.deployment_id for k in keys],
            "metrics": [k.metric_name for k in keys],
            "starts": [k.bucket_start for k in keys],
            "org": organization_id,
            "granularity": granularity,
            "width": WIDTH[granularity],
        },
    )
    return result.rowcount or 0


def backfill_window(
    *, session: Session, organization_id: uuid.UUID, granularity: str, start: datetime, end: datetime
) -> int:
    """Recompute every bucket of the organization whose points lie in [start, end) (bucket-aligned bounds)."""
    result = session.execute(
        text(
            f"""
            INSERT INTO model_monitoring_rollups ({COLUMNS})
            SELECT m.deployment_id, :org, m.metric_name, CAST(:granularity AS text),
                   date_trunc(CAST(:granularity AS text), m.recorded_at, 'UTC') AS bucket, {STATS}
            FROM model_monitoring m
            WHERE m.organization_id = :org AND m.recorded_at >= :start AND m.recorded_at < :end AND {FINITE}
            GROUP BY m.deployment_id, m.metric_name, bucket
            {UPSERT}
            """
        ),
        {"org": organization_id, "granularity": granularity, "start": start, "end": end},
    )
    return result.rowcount or 0


def raw_time_range(*, session: Session, organization_id: uuid.UUID) -> tuple[datetime | None, datetime | None]:
    """The first and last `recorded_at` of the organization's raw points."""
    row = session.execute(
        text("SELECT min(recorded_at), max(recorded_at) FROM model_monitoring WHERE organization_id = :org"),
        {"org": organization_id},
    ).one()
    return row[0], row[1]


def aggregation_state(*, session: Session, organization_id: uuid.UUID) -> datetime | None:
    """When the organization's backfill finished (None: never)."""
    return session.scalar(
        text("SELECT backfilled_at FROM model_monitoring_aggregation_state WHERE organization_id = :org"),
        {"org": organization_id},
    )


def mark_run(*, session: Session, organization_id: uuid.UUID, backfilled: bool) -> None:
    """Record the run (and, once, the finished backfill)."""
    session.execute(
        text(
            """
            INSERT INTO model_monitoring_aggregation_state (organization_id, backfilled_at, last_run_at)
            VALUES (:org, CASE WHEN :backfilled THEN now() END, now())
            ON CONFLICT (organization_id) DO UPDATE SET last_run_at = now(),
                backfilled_at = coalesce(model_monitoring_aggregation_state.backfilled_at, EXCLUDED.backfilled_at)
            """
        ),
        {"org": organization_id, "backfilled": backfilled},
    )


def pending_invalidations(*, session: Session, organization_id: uuid.UUID) -> int:
    return session.scalar(
        text("SELECT count(*) FROM model_monitoring_invalidations WHERE organization_id = :org"),
        {"org": organization_id},
    )


@dataclass(frozen=True)
class RollupRow:
    deployment_id: uuid.UUID
    metric_name: str
    granularity: str
    bucket_start: datetime
    sample_count: int
    value_mean: float
    value_min: float
    value_max: float
    p50: float
    p95: float
    p99: float
    anomaly_count: int
    source: str  # "rollup", or "raw" where no rollup exists yet

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in self.__dict__.items()}


def recent_hourly_rollups(*, session: Session, metrics: Sequence[str], hours: int) -> list[RollupRow]:
    """The last `hours` hourly rollups of the given metrics for every live deployment visible to the session."""
    rows = session.execute(
        text(
            """
            SELECT r.deployment_id, r.metric_name, r.granularity, r.bucket_start, r.sample_count, r.value_mean,
                   r.value_min, r.value_max, r.p50, r.p95, r.p99, r.anomaly_count, 'rollup' AS source
            FROM model_monitoring_rollups r
            JOIN deployments d ON d.id = r.deployment_id AND d.deleted_at IS NULL
            WHERE r.granularity = 'hour' AND r.metric_name = ANY(:metrics)
              AND r.bucket_start >= date_trunc('hour', now(), 'UTC') - make_interval(hours => :hours)
            ORDER BY r.deployment_id, r.metric_name, r.bucket_start
            """
        ),
        {"metrics": list(metrics), "hours": hours},
    )
    return [RollupRow(*r) for r in rows]


def read_series(
    *,
    session: Session,
    deployment_id: uuid.UUID,
    granularity: str,
    since: datetime,
    metric: str | None,
) -> list[RollupRow]:
    """Rollups of one deployment from the bucket holding `since` on; buckets with raw points but no rollup yet
    are computed from the raw points on the fly (marked `source = 'raw'`). `since` is aligned down to its bucket
    so that the first bucket is read whole, from its rollup, and never as a partial raw bucket."""
    rows = session.execute(
        text(
            f"""
            WITH rolled AS (
                SELECT r.deployment_id, r.metric_name, r.granularity, r.bucket_start, r.sample_count, r.value_mean,
                       r.value_min, r.value_max, r.p50, r.p95, r.p99, r.anomaly_count, 'rollup' AS source
                FROM model_monitoring_rollups r
                WHERE r.deployment_id = :dep AND r.granularity = CAST(:granularity AS text)
                  AND r.bucket_start >= date_trunc(CAST(:granularity AS text), CAST(:since AS timestamptz), 'UTC')
                  AND (CAST(:metric AS text) IS NULL OR r.metric_name = :metric)
            ), raw AS (
                SELECT m.deployment_id, m.metric_name, CAST(:granularity AS text) AS granularity,
                       date_trunc(CAST(:granularity AS text), m.recorded_at, 'UTC') AS bucket_start,
                       count(*) AS sample_count, avg(m.value) AS value_mean, min(m.value) AS value_min,
                       max(m.value) AS value_max,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY m.value) AS p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value) AS p95,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY m.value) AS p99,
                       count(*) FILTER (WHERE m.is_anomaly) AS anomaly_count, 'raw' AS source
                FROM model_monitoring m
                WHERE m.deployment_id = :dep AND {FINITE}
                  AND m.recorded_at >= date_trunc(CAST(:granularity AS text), CAST(:since AS timestamptz), 'UTC')
                  AND (CAST(:metric AS text) IS NULL OR m.metric_name = :metric)
                  AND NOT EXISTS (
                      SELECT 1 FROM rolled WHERE rolled.metric_name = m.metric_name
                        AND rolled.bucket_start = date_trunc(CAST(:granularity AS text), m.recorded_at, 'UTC'))
                GROUP BY m.deployment_id, m.metric_name, 4
            )
            SELECT * FROM rolled UNION ALL SELECT * FROM raw
            ORDER BY metric_name, bucket_start
            """
        ),
        {"dep": deployment_id, "granularity": granularity, "since": since, "metric": metric},
    )
    return [RollupRow(*r) for r in rows]


def summarise_ended_runs(*, session: Session, lower_is_better: str) -> int:
    """Give every ended run without summarised metrics its summary from `run_metrics` (per metric: last, min,
    max and the step of the best value) and its `duration_seconds`; returns the runs summarised.

    `lower_is_better` is a PostgreSQL regular expression of metric names where lower is better.
    """
    result = session.execute(
        text(
            """
            WITH ended AS (
                SELECT r.id FROM experiment_runs r
                WHERE r.status IN ('completed', 'failed', 'cancelled')
                  AND (r.metrics IS NULL OR r.metrics = '{}'::jsonb)
                  AND EXISTS (SELECT 1 FROM run_metrics rm WHERE rm.run_id = r.id)
                FOR UPDATE OF r SKIP LOCKED
            ), per_metric AS (
                SELECT rm.run_id, rm.metric_name,
                       (array_agg(rm.value ORDER BY rm.step DESC, rm.timestamp DESC NULLS LAST))[1] AS last,
                       min(rm.value) AS min, max(rm.value) AS max,
                       CASE WHEN rm.metric_name ~* :lower
                            THEN (array_agg(rm.step ORDER BY rm.value ASC, rm.step ASC))[1]
                            ELSE (array_agg(rm.step ORDER BY rm.value DESC, rm.step ASC))[1] END AS best_step
                FROM run_metrics rm JOIN ended ON ended.id = rm.run_id
                WHERE rm.value NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
                GROUP BY rm.run_id, rm.metric_name
            ), summary AS (
                SELECT run_id, jsonb_object_agg(metric_name, jsonb_build_object(
                    'last', last, 'min', min, 'max', max, 'best_step', best_step)) AS metrics
                FROM per_metric GROUP BY run_id
            )
            UPDATE experiment_runs r
            SET metrics = summary.metrics,
                duration_seconds = coalesce(r.duration_seconds,
                    CAST(extract(epoch FROM (r.completed_at - r.started_at)) AS integer))
            FROM summary WHERE r.id = summary.run_id
            """
        ),
        {"lower": lower_is_better},
    )
    # runs without any metric point still get their duration
    session.execute(
        text(
            """
            UPDATE experiment_runs
            SET duration_seconds = CAST(extract(epoch FROM (completed_at - started_at)) AS integer)
            WHERE status IN ('completed', 'failed', 'cancelled') AND duration_seconds IS NULL
              AND completed_at IS NOT NULL AND started_at IS NOT NULL
            """
        )
    )
    return result.rowcount or 0


@dataclass(frozen=True)
class FinishedExperiment:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    status: str
    runs: int
    completed_runs: int


def complete_finished_experiments(*, session: Session) -> list[FinishedExperiment]:
    """Mark running experiments whose runs have all ended: `completed` when any run completed, else `failed`."""
    rows = session.execute(
        text(
            """
            WITH done AS (
                SELECT e.id, count(r.id) AS runs, count(r.id) FILTER (WHERE r.status = 'completed') AS completed_runs
                FROM experiments e JOIN experiment_runs r ON r.experiment_id = e.id
                WHERE e.status = 'running' AND e.deleted_at IS NULL
                GROUP BY e.id
                HAVING count(r.id) FILTER (WHERE r.status = 'running') = 0
            )
            UPDATE experiments e
            SET status = CASE WHEN done.completed_runs > 0 THEN 'completed' ELSE 'failed' END,
                completed_at = coalesce(e.completed_at, now())
            FROM done WHERE e.id = done.id AND e.status = 'running'
            RETURNING e.id, e.project_id, e.name, e.status, done.runs, done.completed_runs
            """
        )
    )
    return [FinishedExperiment(*r) for r in rows]


@dataclass(frozen=True)
class MonitoredDeployment:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    environment: str
    config: dict[str, Any]


def live_deployments(*, session: Session) -> list[MonitoredDeployment]:
    """Every live deployment visible to the session, with its configuration."""
    rows = session.execute(
        text(
            "SELECT id, project_id, name, environment, coalesce(deployment_config, '{}'::jsonb) FROM deployments "
            "WHERE deleted_at IS NULL ORDER BY name, environment"
        )
    )
    return [MonitoredDeployment(*r) for r in rows]


@dataclass(frozen=True)
class OpenAlert:
    id: uuid.UUID
    status: str
    message: str


def unresolved_alert(*, session: Session, deployment_id: uuid.UUID, alert_type: str) -> OpenAlert | None:
    """The deployment's unresolved alert of this type, locked (the partial unique index allows one)."""
    row = session.execute(
        text(
            "SELECT id, status, message FROM alerts WHERE deployment_id = :dep AND alert_type = :type "
            "AND status <> 'resolved' FOR UPDATE"
        ),
        {"dep": deployment_id, "type": alert_type},
    ).one_or_none()
    return OpenAlert(*row) if row else None


def open_alert(
    *,
    session: Session,
    organization_id: uuid.UUID,
    deployment_id: uuid.UUID,
    alert_type: str,
    severity: str,
    title: str,
    message: str,
) -> uuid.UUID | None:
    """Insert an open alert; None when a concurrent writer opened the same one first."""
    return session.scalar(
        text(
            """
            INSERT INTO alerts (organization_id, deployment_id, alert_type, severity, title, message)
            VALUES (:org, :dep, :type, :severity, :title, :message)
            ON CONFLICT (deployment_id, alert_type)
                WHERE status <> 'resolved' AND alert_type IN ('high_latency', 'error_rate', 'performance_degradation')
            DO NOTHING
            RETURNING id
            """
        ),
        {
            "org": organization_id,
            "dep": deployment_id,
            "type": alert_type,
            "severity": severity,
            "title": title[:255],
            "message": message,
        },
    )


def update_alert_message(*, session: Session, alert_id: uuid.UUID, message: str) -> None:
    session.execute(
        text("UPDATE alerts SET message = :message WHERE id = :id AND message IS DISTINCT FROM :message"),
        {"id": alert_id, "message": message},
    )


def resolve_alert(*, session: Session, alert_id: uuid.UUID) -> None:
    session.execute(
        text("UPDATE alerts SET status = 'resolved', resolved_at = now() WHERE id = :id AND status <> 'resolved'"),
        {"id": alert_id},
    )


def deployment_by_ref(*, session: Session, project: str, name: str, environment: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(deployment id, project id) of a live deployment visible to the session; NotFound otherwise."""
    row = session.execute(
        text(
            "SELECT d.id, d.project_id FROM deployments d JOIN projects p ON p.id = d.project_id "
            "WHERE p.slug = :project AND p.deleted_at IS NULL AND d.name = :name AND d.environment = :env "
            "AND d.deleted_at IS NULL"
        ),
        {"project": project, "name": name, "env": environment},
    ).one_or_none()
    if row is None:
        raise NotFound(f"no deployment {project}/{name} in {environment}")
    return row[0], row[1]
