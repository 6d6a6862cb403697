"""SQL of the retention run and its audit archives: the run lock, organizations, expired audit months (COPY out,
bounded deletes, restore), the archive ledger, the failure alert.

Every function takes `session` (or `connection` for the run lock) keyword-only and never commits: the caller
runs each bounded batch in a short transaction of its own. Retention runs as the owner (RLS bypassed), so every
statement names the organization it works on explicitly. The other categories (monitoring, soft-deleted rows,
artifacts, notifications) are in `db.queries.retention_data`.
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
