"""Retention of everything but audit logs: raw monitoring, rollups, soft-deleted rows, artifacts, notifications.

Each function handles one category of one organization and returns its `CategoryReport`; a dry run only
counts. Deletes go in bounded batches, each its own short transaction as the owner (see
`retention_owner_session`), so an interrupted run leaves consistent data and the next run resumes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from db.queries import retention_data as q
from services.access import Principal
from services.audit import record_audit
from tasks.retention.maintenance import retention_owner_session
from tasks.retention.rules import CategoryReport, Cutoffs, RetentionPolicy

MONITORING_WINDOW = timedelta(hours=12)  # raw points deleted per transaction: whole hours, bounded span


def monitoring_raw(org_id: uuid.UUID, cut: Cutoffs, *, dry_run: bool) -> CategoryReport:
    """Raw points older than the cutoff, only in hour buckets whose rollups are complete."""
    report = CategoryReport("monitoring_raw")
    if dry_run:
        with retention_owner_session() as session:
            report.count, report.held = q.raw_monitoring_counts(
                session=session, organization_id=org_id, cutoff=cut.monitoring_raw
            )
        return _held_note(report)
    after: datetime | None = None
    while True:
        with retention_owner_session() as session:
            first = q.next_raw_monitoring_time(
                session=session, organization_id=org_id, after=after, cutoff=cut.monitoring_raw
            )
        if first is None:
            break
        lo = first.replace(minute=0, second=0, microsecond=0)
        hi = min(lo + MONITORING_WINDOW, cut.monitoring_raw)
        with retention_owner_session() as session:
            report.count += q.delete_raw_monitoring_window(session=session, organization_id=org_id, lo=lo, hi=hi)
        after = hi
    with retention_owner_session() as session:  # what is left before the cutoff was held back
        report.held = q.raw_monitoring_counts(session=session, organization_id=org_id, cutoff=cut.monitoring_raw)[1]
    return _held_note(report)


def _held_note(report: CategoryReport) -> CategoryReport:
    if report.held:
        report.note = f"{report.held} raw point(s) kept: their hourly/daily rollups are missing or incomplete"
    return report


def monitoring_rollups(org_id: uuid.UUID, cut: Cutoffs, *, dry_run: bool, batch_size: int) -> CategoryReport:
    report = CategoryReport("monitoring_rollups")
    if dry_run:
        with retention_owner_session() as session:
            report.count = q.count_expired_rollups(
                session=session, organization_id=org_id, cutoff=cut.monitoring_rollups
            )
        return report
    while True:
        with retention_owner_session() as session:
            n = q.delete_expired_rollups(
                session=session, organization_id=org_id, cutoff=cut.monitoring_rollups, limit=batch_size
            )
        report.count += n
        if n < batch_size:
            return report


def soft_deleted(
    org_id: uuid.UUID,
    cut: Cutoffs,
    policy: RetentionPolicy,
    principal: Principal,
    *,
    dry_run: bool,
    batch_size: int,
) -> list[CategoryReport]:
    """Purge soft-deleted deployments, experiments, models and projects past the grace period, with their
    children, each purge audited in its own transaction. A model or project whose versions still wait for
    their artifact's retention, or that a deployment elsewhere references, is held."""
    reports = []
    for kind in q.PURGE_ORDER:
        report = CategoryReport(f"deleted_{kind}s")
        reports.append(report)
        with retention_owner_session() as session:
            due = q.purgeable(session=session, organization_id=org_id, kind=kind, cutoff=cut.deleted)
            total = q.count_soft_deleted(session=session, organization_id=org_id, kind=kind, cutoff=cut.deleted)
        report.held = total - len(due)
        if report.held:
            report.note = f"{report.held} kept: artifacts not yet past retention, or still referenced"
        if dry_run:
            report.count = len(due)
            continue
        for item in due:
            if kind in ("deployment", "project"):
                while True:  # a busy deployment's monitoring goes in bounded batches, not one huge cascade
                    with retention_owner_session() as session:
                        n = q.delete_monitoring_of(session=session, kind=kind, entity_id=item.id, limit=batch_size)
                    if n < batch_size:
                        break
            with retention_owner_session() as session:
                if q.purge(session=session, kind=kind, entity_id=item.id):
                    record_audit(
                        session,
                        principal=principal,
                        action=f"{kind}.purge",
                        resource_type=kind,
                        resource_id=item.id,
                        details={
                            "name": item.name,
                            "deleted_at": item.deleted_at.isoformat(),
                            "grace_days": policy.deleted_grace_days,
                        },
                    )
                    report.count += 1
    return reports


def model_artifacts(
    org_id: uuid.UUID, cut: Cutoffs, policy: RetentionPolicy, principal: Principal, *, dry_run: bool
) -> CategoryReport:
    """Delete retired versions' artifacts from the store (one object may serve several due versions), then
    record `artifact_purged_at` and an audit row per version. A crash in between is repaired by the next run:
    deleting a missing object is not an error."""
    from services.storage import resolve

    report = CategoryReport("model_artifacts")
    with retention_owner_session() as session:
        due = q.retired_artifacts(session=session, organization_id=org_id, cutoff=cut.model_artifacts)
    by_uri: dict[str, list] = {}
    for artifact in due:
        by_uri.setdefault(artifact.uri, []).append(artifact)
    if dry_run:
        report.count = len(by_uri)
        return report
    for uri, versions in by_uri.items():
        store, key = resolve(uri)
        store.delete([key])
        with retention_owner_session() as session:
            q.mark_artifacts_purged(session=session, version_ids=[v.version_id for v in versions])
            for v in versions:
                record_audit(
                    session,
                    principal=principal,
                    action="model_version.artifact_purge",
                    resource_type="model_version",
                    resource_id=v.version_id,
                    details={
                        "uri": uri,
                        "retired_at": v.retired_at.isoformat(),
                        "retention_days": policy.model_artifacts_days,
                    },
                )
        report.count += 1
    return report


def notifications(org_id: uuid.UUID, cut: Cutoffs, *, dry_run: bool, batch_size: int) -> list[CategoryReport]:
    """Events (and deliveries, once that table exists) 90 days after they were delivered or dead."""
    events, deliveries = CategoryReport("notification_events"), CategoryReport("notification_deliveries")
    with retention_owner_session() as session:
        table = q.deliveries_table(session=session)
    with_deliveries = table == "ok"
    if table not in ("ok", "absent"):
        # events are deleted only when none of their deliveries is live: unable to tell, delete neither
        deliveries.note = events.note = f"skipped: notification_deliveries {table}"
        return [events, deliveries]
    if not with_deliveries:
        deliveries.note = "table absent"
    if dry_run:
        with retention_owner_session() as session:
            events.count, deliveries.count = q.count_expired_notifications(
                session=session, organization_id=org_id, cutoff=cut.notifications, with_deliveries=with_deliveries
            )
        return [events, deliveries]
    if with_deliveries:
        deliveries.count = _drain(
            lambda s: q.delete_expired_deliveries(
                session=s, organization_id=org_id, cutoff=cut.notifications, limit=batch_size
            ),
            batch_size,
        )
    events.count = _drain(
        lambda s: q.delete_expired_events(
            session=s,
            organization_id=org_id,
            cutoff=cut.notifications,
            limit=batch_size,
            with_deliveries=with_deliveries,
        ),
        batch_size,
    )
    return [events, deliveries]


def _drain(delete_batch, batch_size: int) -> int:
    total = 0
    while True:
        with retention_owner_session() as session:
            n = delete_batch(session)
        total += n
        if n < batch_size:
            return total
