"""SQL of the retention flow: expired rows per category, archive ledger, bounded deletes, purges, the run lock.

Every function takes `session` (or `connection` for the run lock) keyword-only and never commits: the caller
runs each bounded batch in a short transaction of its own. Retention runs as the owner (RLS bypassed), so every
statement names the organization it works on explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

# One key for every process: `pg_try_advisory_lock` makes two runs (or a run and a restore) never overlap.
RUN_LOCK_KEY = 0x6D6C6F7073_5254  # "mlops" "RT"

# --- the run lock --------------------------------------------------------------------------------------------


def try_run_lock(*, connection: Connection) -> bool:
    """Take the session-level retention lock on `connection` if free; it lives until unlocked or disconnected
    (a killed run releases it with its connection)."""
    return bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RUN_LOCK_KEY}).scalar())


def release_run_lock(*, connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RUN_LOCK_KEY})


# --- organizations -------------------------------------------------------------------------------------------


def organizations_with_settings(*, session: Session, slug: str | None = None) -> list[tuple[uuid.UUID, str, dict]]:
    """(id, slug, settings) of every live organization, or of `slug` only."""
    rows = session.execute(
        text(
            "SELECT id, slug, COALESCE(settings, '{}'::jsonb) AS settings FROM organizations "
            "WHERE deleted_at IS NULL AND (CAST(:slug AS text) IS NULL OR slug = :slug) ORDER BY slug"
        ),
        {"slug": slug},
    )
    return [(r.id, r.slug, r.settings) for r in rows]


# --- audit logs ----------------------------------------------------------------------------------------------

# Columns of an audit archive, in order. `created_us` is microseconds since the epoch (exact, zone-free).
AUDIT_COPY_COLUMNS = (
    "id",
    "organization_id",
    "user_id",
    "api_key_id",
    "action",
    "resource_type",
    "resource_id",
    "details",
    "ip_address",
    "user_agent",
    "created_us",
)
_AUDIT_SELECT = (
    "SELECT id, organization_id, user_id, api_key_id, action, resource_type, resource_id, details, ip_address, "
    "user_agent, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us FROM audit_logs"
)
_MONTH = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')"


def expired_audit_months(*, session: Session, organization_id: uuid.UUID, cutoff: datetime) -> list[tuple[str, int]]:
    """(YYYY-MM, expired row count) of each UTC month holding audit rows older than `cutoff`, oldest first."""
    rows = session.execute(
        text(
            f"SELECT {_MONTH} AS period, count(*) AS n FROM audit_logs "
            "WHERE organization_id = :org AND created_at < :cutoff GROUP BY 1 ORDER BY 1"
        ),
        {"org": organization_id, "cutoff": cutoff},
    )
    return [(r.period, r.n) for r in rows]


def stream_expired_audit_csv(
    *, session: Session, organization_id: uuid.UUID, start: datetime, end: datetime
) -> Iterator[bytes]:
    """The audit rows with `start <= created_at < end` as CSV blocks from `COPY ... TO STDOUT` (every non-null
    value quoted, so an unquoted empty field is NULL and `""` an empty string); memory stays bounded."""
    sql = (
        f"COPY ({_AUDIT_SELECT} WHERE organization_id = %s AND created_at >= %s AND created_at < %s) "
        "TO STDOUT (FORMAT csv, FORCE_QUOTE *)"
    )
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy(sql, (organization_id, start, end)) as copy:
        yield from (bytes(block) for block in copy)


def delete_audit_ids(*, session: Session, organization_id: uuid.UUID, ids_literal: str, cutoff: datetime) -> int:
    """Delete the audit rows whose ids are in `ids_literal` (a `{...}` uuid array literal); only expired rows of
    the organization, whatever the list says. Returns how many went."""
    return session.execute(
        text(
            "DELETE FROM audit_logs WHERE organization_id = :org AND created_at < :cutoff "
            "AND id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"org": organization_id, "cutoff": cutoff, "ids": ids_literal},
    ).rowcount


def restore_audit_csv(*, session: Session, csv: bytes) -> tuple[int, int]:
    """Insert audit rows from CSV in `AUDIT_COPY_COLUMNS` order unless their id exists; (inserted, users or keys
    gone since, whose reference became NULL as `ON DELETE SET NULL` would have made it)."""
    session.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS retention_restore (id uuid, organization_id uuid, user_id uuid, "
            "api_key_id uuid, action text, resource_type text, resource_id uuid, details text, ip_address text, "
            "user_agent text, created_us bigint) ON COMMIT DELETE ROWS"
        )
    )
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY retention_restore ({', '.join(AUDIT_COPY_COLUMNS)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(csv)
    gone = session.execute(
        text(
            "SELECT count(*) FROM retention_restore r WHERE "
            "(r.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id)) OR "
            "(r.api_key_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = r.api_key_id))"
        )
    ).scalar_one()
    inserted = session.execute(
        text(
            "INSERT INTO audit_logs (id, organization_id, user_id, api_key_id, action, resource_type, resource_id, "
            "details, ip_address, user_agent, created_at) "
            "SELECT r.id, r.organization_id, u.id, k.id, r.action, r.resource_type, r.resource_id, "
            "CAST(r.details AS jsonb), CAST(r.ip_address AS inet), r.user_agent, "
            "timestamptz 'epoch' + r.created_us * interval '1 microsecond' "
            "FROM retention_restore r LEFT JOIN users u ON u.id = r.user_id "
            "LEFT JOIN api_keys k ON k.id = r.api_key_id "
            "ON CONFLICT (id) DO NOTHING"
        )
    ).rowcount
    return inserted, gone


# --- the archive ledger --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveRecord:
    organization_id: uuid.UUID
    organization: str
    category: str
    period: str
    object_key: str
    row_count: int
    min_time: datetime | None
    max_time: datetime | None
    checksum: str
    size_bytes: int | None
    archived_at: datetime
    held_until: datetime | None


def record_archive(
    *,
    session: Session,
    organization_id: uuid.UUID,
    category: str,
    period: str,
    object_key: str,
    row_count: int,
    min_time: datetime | None,
    max_time: datetime | None,
    checksum: str,
    size_bytes: int | None,
) -> None:
    """Upsert the ledger row of a verified archive (keeping any restore hold)."""
    session.execute(
        text(
            "INSERT INTO retention_archives (organization_id, category, period, object_key, row_count, min_time, "
            "max_time, checksum, size_bytes) VALUES (:org, :cat, :period, :key, :n, :lo, :hi, :sum, :size) "
            "ON CONFLICT (organization_id, category, period) DO UPDATE SET object_key = EXCLUDED.object_key, "
            "row_count = EXCLUDED.row_count, min_time = EXCLUDED.min_time, max_time = EXCLUDED.max_time, "
            "checksum = EXCLUDED.checksum, size_bytes = EXCLUDED.size_bytes, archived_at = now()"
        ),
        dict(
            org=organization_id,
            cat=category,
            period=period,
            key=object_key,
            n=row_count,
            lo=min_time,
            hi=max_time,
            sum=checksum,
            size=size_bytes,
        ),
    )


def hold_archive(*, session: Session, organization_id: uuid.UUID, category: str, period: str, until: datetime) -> bool:
    """Keep a restored month in the database until `until`; False when the month was never archived."""
    return bool(
        session.execute(
            text(
                "UPDATE retention_archives SET held_until = GREATEST(COALESCE(held_until, :until), :until) "
                "WHERE organization_id = :org AND category = :cat AND period = :period"
            ),
            {"org": organization_id, "cat": category, "period": period, "until": until},
        ).rowcount
    )


def held_periods(*, session: Session, organization_id: uuid.UUID, category: str, now: datetime) -> set[str]:
    """The months of the category restored and still on hold."""
    rows = session.execute(
        text(
            "SELECT period FROM retention_archives WHERE organization_id = :org AND category = :cat "
            "AND held_until > :now"
        ),
        {"org": organization_id, "cat": category, "now": now},
    )
    return {r.period for r in rows}


def list_archives(*, session: Session, slug: str | None = None) -> list[ArchiveRecord]:
    """Every ledger row (of one organization when `slug` is given), by organization and month."""
    rows = session.execute(
        text(
            "SELECT a.*, o.slug FROM retention_archives a JOIN organizations o ON o.id = a.organization_id "
            "WHERE CAST(:slug AS text) IS NULL OR o.slug = :slug ORDER BY o.slug, a.category, a.period"
        ),
        {"slug": slug},
    )
    return [
        ArchiveRecord(
            r.organization_id,
            r.slug,
            r.category,
            r.period,
            r.object_key,
            r.row_count,
            r.min_time,
            r.max_time,
            r.checksum,
            r.size_bytes,
            r.archived_at,
            r.held_until,
        )
        for r in rows
    ]


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
DELIVERY_FINAL_STATUSES = ("delivered", "dead")


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


# --- failures ------------------------------------------------------------------------------------------------


def open_failure_alert(*, session: Session, organization_id: uuid.UUID, title: str, message: str) -> uuid.UUID:
    """An organization-wide high-severity alert saying what retention could not do."""
    return session.execute(
        text(
            "INSERT INTO alerts (organization_id, alert_type, severity, title, message) "
            "VALUES (:org, 'custom', 'high', :title, :message) RETURNING id"
        ),
        {"org": organization_id, "title": title[:255], "message": message},
    ).scalar_one()
