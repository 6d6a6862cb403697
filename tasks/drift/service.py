"""Drift detection's I/O: list the deployments to analyse, authorize an on-demand run, and analyse one
deployment (read both windows, compute the drift, write the report, its HTML page, the alert and the event)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.errors import InvalidInput, MlopsError, NotFound, PermissionDenied, TransientError
from db.queries import drift as dq
from db.session import session_scope, system_session
from services.access import Principal, subscription_active, system_principal
from services.audit import record_audit, record_refusal
from services.outbox import emit_event
from services.storage import allowed_uris, open_store, resolve_for_organization
from tasks.drift.datasets import read_uri, read_window
from tasks.drift.report import render_drift_html
from tasks.drift.rules import (
    DriftConfig,
    DriftOutcome,
    DriftTarget,
    alert_severity,
    deployment_ref,
    drift_config,
    drift_window,
    report_change,
    report_key,
)
from tasks.drift.verdicts import DatasetDrift, dataset_drift


def list_targets(
    organization: str | None, deployment: str | None, environment: str | None
) -> tuple[list[DriftTarget], list[str]]:
    """Active deployments with drift configured (optionally one organization or one deployment), and notes
    about organizations skipped because their subscription is not active."""
    ref = deployment_ref(deployment, environment)
    if ref and organization and ref[0] != organization:
        raise InvalidInput(f"--deployment {deployment} is not in organization '{organization}'")
    org_filter = ref[0] if ref else organization
    with system_session() as session:  # the scheduler lists every organization: the maintenance role
        orgs = dq.live_organizations(session=session, slug=org_filter)
    if org_filter and not orgs:
        raise NotFound(f"unknown organization '{org_filter}'")
    targets, notes = [], []
    for org in orgs:
        if not subscription_active(org.subscription_status):
            notes.append(f"skipped organization '{org.slug}': subscription is {org.subscription_status}")
            continue
        with session_scope(org.id) as session:
            rows = dq.monitored_deployments(session=session, ref=ref[1:] if ref else None)
        if ref and not rows:
            raise NotFound(f"no active deployment {deployment} ({environment}) with drift monitoring configured")
        allowed = allowed_uris(org.settings)
        targets += [
            DriftTarget(
                org.id,
                org.slug,
                d.project_id,
                project,
                d.id,
                d.name,
                d.environment,
                _drift_section(d.deployment_config),
                allowed,
            )
            for d, project in rows
        ]
    return targets, notes


def authorize_drift_run(principal: Principal, targets: list[DriftTarget]) -> None:
    """An on-demand run: the principal may run drift detection on every target (audited per deployment)."""
    from services.access import Action
    from services.audit import authorize

    for target in targets:
        if principal.organization_id != target.organization_id:
            raise PermissionDenied(f"{principal.display} does not belong to organization '{target.organization}'")
        authorize(
            principal,
            Action.DRIFT_RUN,
            target.project_id,
            what=f"{target.project}/{target.deployment}",
            audit_action="data_drift_report.write",
            resource_type="deployment",
            resource_id=target.deployment_id,
        )


def detect_deployment_drift(
    target: DriftTarget, window: tuple[datetime, datetime] | None, scheduled_at: datetime, actor: Principal | None
) -> DriftOutcome:
    """Analyse one deployment over its window. Configuration and data problems give a `failed` outcome with
    a clear message and write nothing; other deployments are unaffected. A TransientError (database or store
    unreachable) is raised, so the task is retried."""
    name = target.name
    principal = actor or system_principal(target.organization_id, target.organization)
    try:
        config = drift_config({"monitoring": {"drift": target.drift}})
        if config is None:
            return DriftOutcome(name, "skipped", "drift monitoring is disabled")
        _check_uris(target, principal, config)
        start, end = window or drift_window(scheduled_at, config.interval_minutes)
        # without a column list every column is read and typed as Evidently would (text and ids are left out)
        wanted = list(config.columns) if config.columns else None
        reference = _read_reference(config, wanted).drop(columns=[config.timestamp_column], errors="ignore")
        current = read_window(config.inputs_uri, start, end, timestamp_column=config.timestamp_column, columns=wanted)
        if current.empty:
            message = f"no logged inputs between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"
            return DriftOutcome(name, "skipped", message, window=(start.isoformat(), end.isoformat()))
        result = dataset_drift(
            reference,
            current,
            columns=wanted,
            column_types=config.column_types,
            methods=config.methods,
            thresholds=config.thresholds,
            drift_threshold=config.drift_threshold,
        )
        report_uri = _save_html(target, result, reference, current, start, end)
        return _record(target, principal, config, result, reference, current, start, end, report_uri)
    except TransientError:
        raise
    except MlopsError as exc:
        return DriftOutcome(
            name, "failed", str(exc), window=(window[0].isoformat(), window[1].isoformat()) if window else None
        )


def _check_uris(target: DriftTarget, principal: Principal, config: DriftConfig) -> None:
    """The tenant-supplied URIs must lie in the organization's part of the store (or its allow-list): a
    deployment's configuration must not read another organization's data into its own report. A refusal is
    audited and raised (PermissionDenied: that deployment fails)."""
    for key, uri in (("reference_uri", config.reference_uri), ("inputs_uri", config.inputs_uri)):
        try:
            resolve_for_organization(uri, target.organization, allowed=target.allowed_uris)
        except PermissionDenied as exc:
            record_refusal(
                principal,
                action="data_drift_report.read",
                resource_type="deployment",
                resource_id=target.deployment_id,
                reason=f"monitoring.drift.{key}: {exc}",
                details={"deployment": target.name, "uri": uri},
            )
            raise PermissionDenied(f"monitoring.drift.{key}: {exc}") from None


def _drift_section(deployment_config: Mapping[str, Any] | None) -> Any:
    return ((deployment_config or {}).get("monitoring") or {}).get("drift")


def _read_reference(config: DriftConfig, columns: list[str] | None):
    try:
        return read_uri(config.reference_uri, columns)
    except NotFound:
        raise NotFound(f"reference dataset {config.reference_uri} does not exist") from None


def _save_html(target: DriftTarget, result: DatasetDrift, reference, current, start: datetime, end: datetime) -> str:
    store = open_store()
    html = render_drift_html(
        result,
        reference,
        current,
        title=f"Data drift: {target.deployment} ({target.environment})",
        subtitle=f"{target.organization}/{target.project} · {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
    )
    key = report_key(target.organization, target.project, target.deployment, target.environment, start, end)
    store.put(key, html.encode(), content_type="text/html; charset=utf-8")
    return store.uri_for(key)


def _record(
    target: DriftTarget,
    principal: Principal,
    config: DriftConfig,
    result: DatasetDrift,
    reference,
    current,
    start: datetime,
    end: datetime,
    report_uri: str,
) -> DriftOutcome:
    """Upsert the window's report and, on drift, the deployment's one unresolved drift alert and its event,
    with the audit row, in one transaction."""
    features = {c.column: c.to_json() for c in result.columns}
    report_data = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "rows": {"reference": len(reference), "current": len(current)},
        "missing_values": {
            c.column: {"reference": c.reference_missing, "current": c.current_missing} for c in result.columns
        },
        "columns": {
            "analysed": result.number_of_columns,
            "drifted": result.number_of_drifted_columns,
            "failed": result.number_of_failed_columns,
        },
        "errors": {c.column: c.error for c in result.columns if c.error},
        # a column that errored was not tested: such a report is never evidence of "no drift" (promotion gate)
        "status": "incomplete" if result.number_of_failed_columns else "complete",
        "configuration": config.to_json(),
        "report_uri": report_uri,
    }
    name = target.name
    with session_scope(target.organization_id) as session:
        values = {
            "drift_score": result.drift_share,
            "drift_threshold": result.drift_threshold,
            "is_drift_detected": result.dataset_drift,
            "feature_drift": features,
            "report_data": report_data,
        }
        report_id, before = dq.upsert_report(
            session=session, deployment_id=target.deployment_id, period_start=start, period_end=end, values=values
        )
        change = report_change(before, values)
        alert_id = None
        drifted = [c.column for c in result.columns if c.drifted]
        if result.dataset_drift:
            alert_id = _upsert_alert(session, target, result, drifted, start, end, report_uri)
            emit_event(
                session,
                organization_id=target.organization_id,
                project_id=target.project_id,
                deployment_id=target.deployment_id,
                trigger_type="alert",
                event_type="data_drift.detected",
                severity=alert_severity(result.drift_share, result.drift_threshold),
                payload={
                    "deployment": target.deployment,
                    "environment": target.environment,
                    "organization": target.organization,
                    "project": target.project,
                    "drift_share": result.drift_share,
                    "drift_threshold": result.drift_threshold,
                    "drifted_columns": drifted,
                    "window": report_data["window"],
                    "report_uri": report_uri,
                    "alert_id": str(alert_id),
                },
                dedup_key=f"data_drift:{target.deployment_id}:{start.isoformat()}:{end.isoformat()}",
            )
        record_audit(
            session,
            principal=principal,
            action="data_drift_report.write",
            resource_type="data_drift_report",
            resource_id=report_id,
            details={
                "deployment": name,
                "window": report_data["window"],
                "drift_share": result.drift_share,
                "drift_detected": result.dataset_drift,
                "alert_id": str(alert_id) if alert_id else None,
                "change": change,
            },
        )
    verdict = "drift detected" if result.dataset_drift else "no drift"
    message = (
        f"{verdict}: {result.number_of_drifted_columns} of {result.number_of_columns} columns drifted "
        f"({result.drift_share:.0%}, threshold {result.drift_threshold:.0%})"
    )
    errored = [c.column for c in result.columns if c.error]
    if errored:
        analysed = result.number_of_columns - len(errored)
        message = (
            f"incomplete: {len(errored)} of {result.number_of_columns} columns could not be tested "
            f"({', '.join(errored)}); "
            + (f"{verdict} in the {analysed} tested: {message.split(': ', 1)[1]}" if analysed else "nothing tested")
        )
    if change != "new":
        message += f" ({change}: this window was reported before)"
    return DriftOutcome(
        deployment=name,
        status="incomplete" if errored else "reported",
        message=message,
        change=change,
        report_id=report_id,
        drift_share=result.drift_share,
        drift_detected=result.dataset_drift,
        report_uri=report_uri,
        alert_id=alert_id,
        columns=[c.to_json() for c in result.columns],
        window=(start.isoformat(), end.isoformat()),
    )


def _upsert_alert(
    session, target: DriftTarget, result: DatasetDrift, drifted: list[str], start, end, report_uri
) -> uuid.UUID:
    """The deployment's unresolved drift alert, updated; a new one when there is none (the partial unique index
    guarantees one)."""
    severity = alert_severity(result.drift_share, result.drift_threshold)
    title = (
        f"Data drift on {target.deployment} ({target.environment}): "
        f"{len(drifted)} of {result.number_of_columns} columns"
    )
    message = (
        f"Drifted columns: {', '.join(drifted)}. Share {result.drift_share:.0%} ≥ threshold "
        f"{result.drift_threshold:.0%} over {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC. Report: {report_uri}"
    )
    values = dict(severity=severity, title=title[:255], message=message)
    return dq.upsert_open_drift_alert(
        session=session, organization_id=target.organization_id, deployment_id=target.deployment_id, values=values
    )
