"""SQL of retention's operational data: raw monitoring and rollups, soft-deleted rows, model artifacts, notifications.

The expired rows of each category, counted for a dry run and deleted in bounded batches. Every function takes
`session` keyword-only and never commits: the caller runs each batch in a short transaction of its own.
Retention runs as the owner (RLS bypassed), so every statement names the organization it works on explicitly.
The run lock, the audit archives and their ledger are in `db.queries.retention`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

# --- monitoring ----------------------------------------------------------------------------------------------

# The raw hour buckets of a window, and the organization's rollups that can cover them (small, materialized
# once per statement, so the checks below are hash lookups, not a scan of all rollups per bucket).
_WINDOW = """
    raw AS MATERIALIZED (
        SELECT m.deployment_id, m.metric_name, date_trunc('hour', m.recorded_at, 'UTC') AS bucket, count(*) AS n
        FROM model_monitoring m
        WHERE m.organization_id = :org AND m.recorded_at >= :lo AND m.recorded_at < :hi
        GROUP BY 1, 2, 3
    ),
    hourly AS MATERIALIZED (
        SELECT deployment_id, metric_name, bucket_start, sample_count FROM model_monitoring_rollups
        WHERE organization_id = :org AND granularity = 'hour' AND bucket_start >= :lo AND bucket_start < :hi
    ),
    daily AS MATERIALIZED (
        SELECT deployment_id, metric_name, bucket_start FROM model_monitoring_rollups
        WHERE organization_id = :org AND granularity = 'day'
          AND bucket_start >= date_trunc('day', CAST(:lo AS timestamptz), 'UTC') AND bucket_start < :hi
    )
"""

# THE definition of "rollups complete" for one hour bucket of raw points (`raw`: deployment_id, metric_name,
# bucket, n): its hourly rollup exists and counted exactly the raw points still there, and the daily rollup of
# its UTC day exists, and no invalidation of the hour is pending (the aggregation has seen every change).
# Raw points are deleted only where this holds; nowhere else decides it.
ROLLUPS_COMPLETE = """
    EXISTS (
        SELECT 1 FROM hourly h
        WHERE h.deployment_id = raw.deployment_id AND h.metric_name = raw.metric_name
          AND h.bucket_start = raw.bucket AND h.sample_count = raw.n
    )
    AND EXISTS (
        SELECT 1 FROM daily d
        WHERE d.deployment_id = raw.deployment_id AND d.metric_name = raw.metric_name
          AND d.bucket_start = date_trunc('day', raw.bucket, 'UTC')
    )
    AND NOT EXISTS (  -- the aggregation has not yet recomputed this hour since its last change
        SELECT 1 FROM model_monitoring_invalidations i
        WHERE i.deployment_id = raw.deployment_id AND i.metric_name = raw.metric_name AND i.bucket_start = raw.bucket
    )
"""


def raw_monitoring_counts(*, session: Session, organization_id: uuid.UUID, cutoff: datetime) -> tuple[int, int]:
    """(raw points older than `cutoff` whose rollups are complete, those held back without complete rollups)."""
    row = session.execute(
        text(
            f"WITH {_WINDOW} SELECT COALESCE(sum(n) FILTER (WHERE {ROLLUPS_COMPLETE}), 0) AS ok, "
            "COALESCE(sum(n), 0) AS total FROM raw"
        ),
        {"org": organization_id, "lo": datetime(1970, 1, 1, tzinfo=cutoff.tzinfo), "hi": cutoff},
    ).one()
    return int(row.ok), int(row.total - row.ok)


def next_raw_monitoring_time(
    *, session: Session, organization_id: uuid.UUID, after: datetime | None, cutoff: datetime
) -> datetime | None:
    """The earliest `recorded_at` at or after `after` (any, when None) and before `cutoff`."""
    return session.execute(
        text(
            "SELECT min(recorded_at) FROM model_monitoring WHERE organization_id = :org "
            "AND (CAST(:after AS timestamptz) IS NULL OR recorded_at >= :after) AND recorded_at < :cutoff"
        ),
        {"org": organization_id, "after": after, "cutoff": cutoff},
    ).scalar()


def delete_raw_monitoring_window(*, session: Session, organization_id: uuid.UUID, lo: datetime, hi: datetime) -> int:
    """Delete the raw points of `[lo, hi)` (whole UTC hours) whose bucket's rollups are complete.

    Must open its transaction: it makes it REPEATABLE READ, so the counts that `ROLLUPS_COMPLETE` compares and
    the delete see one snapshot; a late point that lands in a bucket meanwhile is invisible to the delete and
    stays (its bucket's counts then differ, so it is kept until aggregation recounts it). The common case,
    every bucket complete, is a plain range delete.
    """
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    params = {"org": organization_id, "lo": lo, "hi": hi}
    incomplete = session.execute(
        text(f"WITH {_WINDOW} SELECT deployment_id, metric_name, bucket FROM raw WHERE NOT ({ROLLUPS_COMPLETE})"),
        params,
    ).all()
    keep = ""
    if incomplete:
        keep = (
            " AND (deployment_id, metric_name, date_trunc('hour', recorded_at, 'UTC')) NOT IN "
            "(SELECT * FROM unnest(CAST(:d AS uuid[]), CAST(:m AS text[]), CAST(:b AS timestamptz[])))"
        )
        params |= {"d": [r[0] for r in incomplete], "m": [r[1] for r in incomplete], "b": [r[2] for r in incomplete]}
    return session.execute(
        text(
            "DELETE FROM model_monitoring WHERE organization_id = :org AND recorded_at >= :lo AND recorded_at < :hi"
            + keep
        ),
        params,
    ).rowcount


_ROLLUP_EXPIRED = (
    "organization_id = :org AND bucket_start + CASE granularity WHEN 'hour' THEN interval '1 hour' "
    "ELSE interval '1 day' END <= :cutoff"
)


def count_expired_rollups(*, session: Session, organization_id: uuid.UUID, cutoff: datetime) -> int:
    return session.execute(
        text(f"SELECT count(*) FROM model_monitoring_rollups WHERE {_ROLLUP_EXPIRED}"),
        {"org": organization_id, "cutoff": cutoff},
    ).scalar_one()


def delete_expired_rollups(*, session: Session, organization_id: uuid.UUID, cutoff: datetime, limit: int) -> int:
    """Delete at most `limit` rollups whose whole bucket lies before `cutoff`."""
    return session.execute(
        text(
            "DELETE FROM model_monitoring_rollups WHERE id IN (SELECT id FROM model_monitoring_rollups "
            f"WHERE {_ROLLUP_EXPIRED} LIMIT :limit)"
        ),
        {"org": organization_id, "cutoff": cutoff, "limit": limit},
    ).rowcount


# --- soft-deleted rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purgeable:
    kind: str  # deployment, experiment, model, project
    id: uuid.UUID
    name: str
    deleted_at: datetime


# A version's artifact is settled when retention purged it or another live version still shares the object
# (then the object stays, and so may the rows): a model or project is purged only when all its versions are,
# so the one-year artifact retention outlives the 30-day grace of the rows that point at the artifact.
_UNSETTLED_VERSION = """
    v.artifact_purged_at IS NULL AND NOT EXISTS (
        SELECT 1 FROM model_versions o JOIN models om ON om.id = o.model_id
        WHERE o.model_file_path = v.model_file_path AND o.id <> v.id AND o.deleted_at IS NULL
          AND om.deleted_at IS NULL)
"""
# Deployments (live or not) and deployment history keep a version: FKs refuse otherwise.
_REFERENCED_VERSION = """
    (EXISTS (SELECT 1 FROM deployments d WHERE d.model_version_id = v.id {not_project})
     OR EXISTS (SELECT 1 FROM deployment_history h JOIN deployments d ON d.id = h.deployment_id
                WHERE h.model_version_id = v.id {not_project}))
"""

_PURGEABLE = {
    "deployment": "SELECT id, name, deleted_at FROM deployments x "
    "WHERE organization_id = :org AND deleted_at < :cutoff",
    "experiment": "SELECT id, name, deleted_at FROM experiments x "
    "WHERE organization_id = :org AND deleted_at < :cutoff",
    "model": f"""
        SELECT id, name, deleted_at FROM models x WHERE organization_id = :org AND deleted_at < :cutoff
        AND NOT EXISTS (SELECT 1 FROM model_versions v WHERE v.model_id = x.id AND (
            ({_UNSETTLED_VERSION}) OR {_REFERENCED_VERSION.format(not_project="")}))
    """,
    "project": f"""
        SELECT id, name, deleted_at FROM projects x WHERE organization_id = :org AND deleted_at < :cutoff
        AND NOT EXISTS (SELECT 1 FROM model_versions v JOIN models m ON m.id = v.model_id
            WHERE m.project_id = x.id AND (({_UNSETTLED_VERSION})
            OR {_REFERENCED_VERSION.format(not_project="AND d.project_id <> x.id")}))
    """,
}
PURGE_ORDER = ("deployment", "experiment", "model", "project")  # dependants first


def purgeable(*, session: Session, organization_id: uuid.UUID, kind: str, cutoff: datetime) -> list[Purgeable]:
    """Soft-deleted rows of `kind` deleted before `cutoff` that can go now, oldest first."""
    rows = session.execute(text(_PURGEABLE[kind] + " ORDER BY deleted_at"), {"org": organization_id, "cutoff": cutoff})
    return [Purgeable(kind, r.id, r.name, r.deleted_at) for r in rows]


def count_soft_deleted(*, session: Session, organization_id: uuid.UUID, kind: str, cutoff: datetime) -> int:
    """Soft-deleted rows of `kind` past the grace period, purgeable now or not."""
    table = {"deployment": "deployments", "experiment": "experiments", "model": "models", "project": "projects"}[kind]
    return session.execute(
        text(f"SELECT count(*) FROM {table} WHERE organization_id = :org AND deleted_at < :cutoff"),
        {"org": organization_id, "cutoff": cutoff},
    ).scalar_one()


def delete_monitoring_of(*, session: Session, kind: str, entity_id: uuid.UUID, limit: int) -> int:
    """Delete at most `limit` raw monitoring points of a deployment (or of every deployment of a project), so the
    purge of a busy deployment is made of bounded transactions and not one huge cascade."""
    where = (
        "deployment_id = :id"
        if kind == "deployment"
        else ("deployment_id IN (SELECT id FROM deployments WHERE project_id = :id)")
    )
    return session.execute(
        text(f"DELETE FROM model_monitoring WHERE id IN (SELECT id FROM model_monitoring WHERE {where} LIMIT :limit)"),
        {"id": entity_id, "limit": limit},
    ).rowcount


def purge(*, session: Session, kind: str, entity_id: uuid.UUID) -> bool:
    """Delete one soft-deleted row with its children (FK cascades); a project's deployments go first, since a
    deployment's version is `ON DELETE RESTRICT`. False when it is no longer soft-deleted (undeleted meanwhile)."""
    if kind == "project":
        session.execute(
            text(
                "DELETE FROM deployments WHERE project_id = :id "
                "AND EXISTS (SELECT 1 FROM projects WHERE id = :id AND deleted_at IS NOT NULL)"
            ),
            {"id": entity_id},
        )
    table = {"deployment": "deployments", "experiment": "experiments", "model": "models", "project": "projects"}[kind]
    return bool(
        session.execute(
            text(f"DELETE FROM {table} WHERE id = :id AND deleted_at IS NOT NULL"), {"id": entity_id}
        ).rowcount
    )


# --- model artifacts -----------------------------------------------------------------------------------------

# When each version retired: archived (the time of its last transition to 'archived' in the stage history), or
# its version, model or project soft-deleted; NULL while live. Versions whose artifact is purged are left out.
_RETIRED = """
    SELECT v.id, v.model_file_path, m.organization_id,
        LEAST(
            CASE WHEN v.stage = 'archived' THEN (
                SELECT max(t.created_at) FROM model_stage_transitions t
                WHERE t.model_version_id = v.id AND t.to_stage = 'archived') END,
            v.deleted_at, m.deleted_at, p.deleted_at) AS retired_at
    FROM model_versions v JOIN models m ON m.id = v.model_id JOIN projects p ON p.id = m.project_id
    WHERE v.artifact_purged_at IS NULL
"""


@dataclass(frozen=True)
class RetiredArtifact:
    version_id: uuid.UUID
    uri: str
    retired_at: datetime


def retired_artifacts(*, session: Session, organization_id: uuid.UUID, cutoff: datetime) -> list[RetiredArtifact]:
    """Versions of the organization retired before `cutoff` whose artifact may go: no deployment or deployment
    history references the version, and no version that is not itself due (in any organization) shares the
    object."""
    rows = session.execute(
        text(
            f"""
            WITH retired AS ({_RETIRED}),
            due AS (
                SELECT r.* FROM retired r WHERE r.retired_at < :cutoff
                AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.model_version_id = r.id)
                AND NOT EXISTS (SELECT 1 FROM deployment_history h WHERE h.model_version_id = r.id)
            )
            SELECT due.id, due.model_file_path, due.retired_at FROM due
            WHERE due.organization_id = :org AND NOT EXISTS (
                SELECT 1 FROM retired o WHERE o.model_file_path = due.model_file_path
                AND NOT EXISTS (SELECT 1 FROM due d2 WHERE d2.id = o.id))
            ORDER BY due.retired_at
            """
        ),
        {"org": organization_id, "cutoff": cutoff},
    )
    return [RetiredArtifact(r.id, r.model_file_path, r.retired_at) for r in rows]


def mark_artifacts_purged(*, session: Session, version_ids: list[uuid.UUID]) -> int:
    return session.execute(
        text(
            "UPDATE model_versions SET artifact_purged_at = now() WHERE id = ANY(:ids) AND artifact_purged_at IS NULL"
        ),
        {"ids": version_ids},
    ).rowcount


# --- notifications -------------------------------------------------------------------------------------------

# notification_deliveries is built by the dispatch flow in parallel: these columns are what retention expects.
DELIVERY_COLUMNS = ("event_id", "status", "updated_at")


def deliveries_table(*, session: Session) -> str | None:
    """'ok' when `notification_deliveries` exists with the expected columns, 'absent', or what is missing."""
    if session.execute(text("SELECT to_regclass('notification_deliveries')")).scalar() is None:
        return "absent"
    # pg_attribute, not information_schema: the latter hides columns this role was not granted, which would
    # read as "missing" instead of failing loudly on the missing grant
    present = set(
        session.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('notification_deliveries') "
                "AND attnum > 0 AND NOT attisdropped"
            )
        ).scalars()
    )
    missing = [c for c in DELIVERY_COLUMNS if c not in present]
    return f"missing columns {', '.join(missing)}" if missing else "ok"


_FINAL_DELIVERY = (
    "dl.status IN ('delivered', 'dead') AND dl.updated_at < :cutoff "
    "AND EXISTS (SELECT 1 FROM notification_events e WHERE e.id = dl.event_id AND e.organization_id = :org)"
)
# an event goes when it was fanned out before the cutoff and none of its deliveries is still pending or recent
_EXPIRED_EVENT = "e.organization_id = :org AND e.dispatched_at < :cutoff"
_NO_LIVE_DELIVERY = (
    " AND NOT EXISTS (SELECT 1 FROM notification_deliveries dl WHERE dl.event_id = e.id "
    "AND NOT (dl.status IN ('delivered', 'dead') AND dl.updated_at < :cutoff))"
)


def count_expired_notifications(
    *, session: Session, organization_id: uuid.UUID, cutoff: datetime, with_deliveries: bool
) -> tuple[int, int]:
    """(expired events, expired deliveries)."""
    params = {"org": organization_id, "cutoff": cutoff}
    events = session.execute(
        text(
            f"SELECT count(*) FROM notification_events e WHERE {_EXPIRED_EVENT}"
            + (_NO_LIVE_DELIVERY if with_deliveries else "")
        ),
        params,
    ).scalar_one()
    deliveries = 0
    if with_deliveries:
        deliveries = session.execute(
            text(f"SELECT count(*) FROM notification_deliveries dl WHERE {_FINAL_DELIVERY}"), params
        ).scalar_one()
    return events, deliveries


def delete_expired_deliveries(*, session: Session, organization_id: uuid.UUID, cutoff: datetime, limit: int) -> int:
    return session.execute(
        text(
            "DELETE FROM notification_deliveries WHERE ctid IN (SELECT dl.ctid FROM notification_deliveries dl "
            f"WHERE {_FINAL_DELIVERY} LIMIT :limit)"
        ),
        {"org": organization_id, "cutoff": cutoff, "limit": limit},
    ).rowcount


def delete_expired_events(
    *, session: Session, organization_id: uuid.UUID, cutoff: datetime, limit: int, with_deliveries: bool
) -> int:
    return session.execute(
        text(
            "DELETE FROM notification_events WHERE id IN (SELECT e.id FROM notification_events e "
            f"WHERE {_EXPIRED_EVENT}{_NO_LIVE_DELIVERY if with_deliveries else ''} LIMIT :limit)"
        ),
        {"org": organization_id, "cutoff": cutoff, "limit": limit},
    ).rowcount
