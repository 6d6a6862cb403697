"""Scheduled drift detection: configuration, windows and alert severity (pure), then the tasks that read the
data, compute the drift, and write the report, its HTML page, the alert and the event."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task

from core.errors import InvalidInput, MlopsError, NotFound, PermissionDenied, TransientError
from core.numbers import require_finite
from db.queries import drift as dq
from db.session import session_scope, system_session
from services.access import Principal, subscription_active, system_principal
from services.audit import record_audit, record_refusal
from services.outbox import emit_event
from services.storage import allowed_uris, open_store, resolve_for_organization
from tasks.common import IO_TASK
from tasks.datasets import read_uri, read_window
from tasks.drift import DatasetDrift, dataset_drift
from tasks.drift_report import render_drift_html
from tasks.drift_stats import COLUMN_TYPES, METHODS

DEFAULT_INTERVAL_MINUTES = 60
DEFAULT_DRIFT_THRESHOLD = 0.1  # the database default of data_drift_reports.drift_threshold
CONFIG_KEYS = frozenset(
    {
        "enabled",
        "reference_uri",
        "inputs_uri",
        "timestamp_column",
        "columns",
        "column_types",
        "per_column",
        "drift_threshold",
        "interval_minutes",
    }
)


@dataclass(frozen=True)
class DriftConfig:
    """`deployment_config["monitoring"]["drift"]`, checked."""

    reference_uri: str
    inputs_uri: str
    timestamp_column: str = "timestamp"
    columns: tuple[str, ...] | None = None
    column_types: Mapping[str, str] = field(default_factory=dict)
    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = list(self.columns) if self.columns else None
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def drift_config(deployment_config: Mapping[str, Any] | None) -> DriftConfig | None:
    """The deployment's drift configuration, None when drift monitoring is not configured or disabled.

    InvalidInput names the offending key of a malformed configuration.
    """
    raw = ((deployment_config or {}).get("monitoring") or {}).get("drift")
    if raw is None or (isinstance(raw, Mapping) and raw.get("enabled") is False):
        return None
    where = "monitoring.drift"
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where} must be an object")
    unknown = sorted(set(raw) - CONFIG_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("reference_uri", "inputs_uri"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise InvalidInput(f"{where}.{key} is required (an artifact-store URI)")
    column_types = dict(raw.get("column_types") or {})
    bad_types = sorted(c for c, t in column_types.items() if t not in COLUMN_TYPES)
    if bad_types:
        raise InvalidInput(f"{where}.column_types: {', '.join(bad_types)} must be 'num' or 'cat'")
    methods, thresholds = {}, {}
    for column, options in dict(raw.get("per_column") or {}).items():
        if not isinstance(options, Mapping) or not set(options) <= {"method", "threshold"}:
            raise InvalidInput(f"{where}.per_column.{column} must be {{'method': ..., 'threshold': ...}}")
        if "method" in options:
            if options["method"] not in METHODS:
                raise InvalidInput(f"{where}.per_column.{column}.method must be one of {', '.join(METHODS)}")
            methods[column] = options["method"]
        if "threshold" in options:
            thresholds[column] = require_finite(options["threshold"], f"{where}.per_column.{column}.threshold")
    threshold = require_finite(raw.get("drift_threshold", DEFAULT_DRIFT_THRESHOLD), f"{where}.drift_threshold")
    if not 0 <= threshold <= 1:
        raise InvalidInput(f"{where}.drift_threshold must be between 0 and 1")
    interval = raw.get("interval_minutes", DEFAULT_INTERVAL_MINUTES)
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 7 * 24 * 60:
        raise InvalidInput(f"{where}.interval_minutes must be a whole number of minutes (1 to 10080)")
    columns = raw.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise InvalidInput(f"{where}.columns must be a list of column names")
    return DriftConfig(
        reference_uri=raw["reference_uri"],
        inputs_uri=raw["inputs_uri"],
        timestamp_column=str(raw.get("timestamp_column") or "timestamp"),
        columns=tuple(columns) if columns else None,
        column_types=column_types,
        methods=methods,
        thresholds=thresholds,
        drift_threshold=threshold,
        interval_minutes=interval,
    )


def drift_window(at: datetime, interval_minutes: int) -> tuple[datetime, datetime]:
    """The interval ending at `at` floored to the interval grid: reruns for the same slot get the same window."""
    at = at.astimezone(UTC)
    step = interval_minutes * 60
    end = datetime.fromtimestamp(math.floor(at.timestamp() / step) * step, tz=UTC)
    return end - timedelta(minutes=interval_minutes), end


def explicit_window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime] | None:
    """A window given by the caller, checked; None when neither bound is given."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise InvalidInput("give both --start and --end, or neither")
    start, end = _aware(start), _aware(end)
    if start >= end:
        raise InvalidInput(f"the window is empty: start {start.isoformat()} is not before end {end.isoformat()}")
    return start, end


def report_change(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """How a run changed its window's report: `new`, `unchanged` (a rerun that found the same result, e.g. a
    second `make demo` in the same hour) or `updated` (late inputs or a new configuration changed it)."""
    if before is None:
        return "new"
    # both sides as JSON would store them: tuples become lists, keys lose their order
    same = json.dumps(dict(before), sort_keys=True, default=str) == json.dumps(dict(after), sort_keys=True, default=str)
    return "unchanged" if same else "updated"


def alert_severity(share: float, threshold: float) -> str:
    """Severity of a drift alert by the share of drifted columns: critical from half the columns."""
    if share >= 0.5:
        return "critical"
    if share >= max(0.3, 2 * threshold):
        return "high"
    if share >= max(0.2, 1.5 * threshold):
        return "medium"
    return "low"


def report_key(org: str, project: str, deployment: str, environment: str, start: datetime, end: datetime) -> str:
    """Deterministic object key of a window's HTML report: a rerun overwrites its own page."""
    stamp = f"{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    return f"drift-reports/{org}/{project}/{deployment}-{environment}/{stamp}.html"


@dataclass(frozen=True)
class DriftTarget:
    """One deployment to analyse, passed between tasks (so shown in the Prefect UI and stored in its database):
    ids, names and the `monitoring.drift` keys only, never the rest of `deployment_config` (it may hold
    anything the serving layer needs, secrets included)."""

    organization_id: uuid.UUID
    organization: str
    project_id: uuid.UUID
    project: str
    deployment_id: uuid.UUID
    deployment: str
    environment: str
    drift: Any  # deployment_config["monitoring"]["drift"], as configured (checked by `drift_config`)
    allowed_uris: tuple[str, ...] = ()  # organizations.settings["storage"]["allowed_uris"]

    @property
    def name(self) -> str:
        return f"{self.organization}/{self.project}/{self.deployment} ({self.environment})"


@dataclass(frozen=True)
class DriftOutcome:
    deployment: str
    status: str  # reported | incomplete (some columns errored) | skipped | failed
    message: str
    change: str | None = None  # new | updated | unchanged: the window's report against what a rerun found
    report_id: uuid.UUID | None = None
    drift_share: float | None = None
    drift_detected: bool | None = None
    report_uri: str | None = None
    alert_id: uuid.UUID | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    window: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- tasks -------------------------------------------------------------------------------------------------


@task(name="list-drift-targets", **IO_TASK)
def list_targets(
    organization: str | None, deployment: str | None, environment: str | None
) -> tuple[list[DriftTarget], list[str]]:
    """Active deployments with drift configured (optionally one organization or one deployment), and notes
    about organizations skipped because their subscription is not active."""
    ref = _deployment_ref(deployment, environment)
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


@task(name="authorize-drift-run", **IO_TASK)
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


@task(name="detect-deployment-drift", task_run_name="drift-{target.deployment}-{target.environment}", **IO_TASK)
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


def _deployment_ref(deployment: str | None, environment: str | None) -> tuple[str, str, str, str] | None:
    if deployment is None:
        if environment is not None:
            raise InvalidInput("--env needs --deployment ORG/PROJECT/DEPLOYMENT")
        return None
    parts = deployment.split("/")
    if len(parts) != 3 or not all(parts):
        raise InvalidInput(f"'{deployment}' is not ORG/PROJECT/DEPLOYMENT")
    if environment not in ("development", "staging", "production"):
        raise InvalidInput("--env must be development, staging or production")
    return parts[0], parts[1], parts[2], environment


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
