"""Metric aggregation: alert rules and bucket arithmetic (pure), then the tasks that roll up, alert and summarise.

Rollups are computed by PostgreSQL (`db/queries/metrics.py`); these tasks decide which buckets, in which
transactions, and what the fresh rollups mean for a deployment's alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task

from core.errors import InvalidInput, MlopsError
from core.numbers import require_finite
from db.queries import metrics as q
from db.queries.tenancy import active_organizations
from db.session import session_scope, system_session
from services.access import Action, Principal, require, subscription_active, system_principal
from services.audit import record_audit
from services.outbox import emit_event
from tasks.common import IO_TASK

STATISTICS = ("p50", "p95", "p99", "mean", "min", "max")
SEVERITIES = ("low", "medium", "high", "critical")
# Documented defaults (README, "Metric alerts"); a deployment overrides or disables them in
# deployment_config["monitoring"]["alerts"].
DEFAULT_ALERT_RULES: dict[str, dict[str, Any]] = {
    "high_latency": {"metric": "latency_p95_ms", "statistic": "p95", "max": 200.0, "buckets": 3, "severity": "high"},
    "error_rate": {"metric": "error_rate", "statistic": "mean", "max": 0.05, "buckets": 3, "severity": "high"},
    "performance_degradation": {
        "metric": "accuracy",
        "statistic": "mean",
        "min": 0.8,
        "buckets": 3,
        "severity": "medium",
    },
}
DEFAULT_RESOLVE_AFTER = 3
RULE_KEYS = frozenset({"metric", "statistic", "max", "min", "buckets", "severity"})
CLAIM_BATCH = 5000  # invalidations claimed per transaction
BACKFILL_DAYS = 7  # raw points per backfill transaction, in whole UTC days


@dataclass(frozen=True)
class AlertRule:
    """Breach when the statistic of each of the last `buckets` hourly rollups is above `max` or below `min`."""

    alert_type: str
    metric: str
    statistic: str
    buckets: int
    severity: str
    maximum: float | None = None
    minimum: float | None = None

    def breached(self, value: float) -> bool:
        return (self.maximum is not None and value > self.maximum) or (
            self.minimum is not None and value < self.minimum
        )

    def describe(self) -> str:
        limit = f"> {self.maximum:g}" if self.maximum is not None else f"< {self.minimum:g}"
        return f"{self.metric} {self.statistic} {limit} for {self.buckets} hourly bucket(s)"


@dataclass(frozen=True)
class AlertPolicy:
    rules: tuple[AlertRule, ...]
    resolve_after: int


def alert_policy(deployment_config: Mapping[str, Any] | None) -> AlertPolicy:
    """The deployment's metric alert rules: the defaults, overridden per alert type, `false` disabling one.

    Raises InvalidInput naming the bad key or value.
    """
    monitoring = (deployment_config or {}).get("monitoring") or {}
    if not isinstance(monitoring, Mapping):
        raise InvalidInput("deployment_config.monitoring must be an object")
    raw = monitoring.get("alerts", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidInput("deployment_config.monitoring.alerts must be an object")
    unknown = sorted(set(raw) - set(DEFAULT_ALERT_RULES) - {"resolve_after"})
    if unknown:
        raise InvalidInput(
            f"monitoring.alerts: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join([*DEFAULT_ALERT_RULES, 'resolve_after'])}"
        )
    resolve_after = _count(raw.get("resolve_after", DEFAULT_RESOLVE_AFTER), "monitoring.alerts.resolve_after")
    rules = []
    for alert_type, default in DEFAULT_ALERT_RULES.items():
        override = raw.get(alert_type, {})
        if override is False:
            continue
        if not isinstance(override, Mapping):
            raise InvalidInput(f"monitoring.alerts.{alert_type} must be an object or false")
        bad = sorted(set(override) - RULE_KEYS)
        if bad:
            raise InvalidInput(
                f"monitoring.alerts.{alert_type}: unknown key(s) {', '.join(bad)}; "
                f"known: {', '.join(sorted(RULE_KEYS))}"
            )
        merged = {**default, **override}
        if "max" in override and "min" not in override:
            merged.pop("min", None)
        if "min" in override and "max" not in override:
            merged.pop("max", None)
        rules.append(_rule(alert_type, merged))
    return AlertPolicy(rules=tuple(rules), resolve_after=resolve_after)


def _rule(alert_type: str, spec: Mapping[str, Any]) -> AlertRule:
    where = f"monitoring.alerts.{alert_type}"
    metric = spec.get("metric")
    if not isinstance(metric, str) or not metric or len(metric) > 100:
        raise InvalidInput(f"{where}.metric must be a metric name of 1-100 characters")
    statistic = spec.get("statistic")
    if statistic not in STATISTICS:
        raise InvalidInput(f"{where}.statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    severity = spec.get("severity")
    if severity not in SEVERITIES:
        raise InvalidInput(f"{where}.severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    maximum = _limit(spec.get("max"), f"{where}.max")
    minimum = _limit(spec.get("min"), f"{where}.min")
    if (maximum is None) == (minimum is None):
        raise InvalidInput(f"{where} needs exactly one of max or min")
    return AlertRule(
        alert_type=alert_type,
        metric=metric,
        statistic=statistic,
        buckets=_count(spec.get("buckets"), f"{where}.buckets"),
        severity=severity,
        maximum=maximum,
        minimum=minimum,
    )


def _limit(value: Any, where: str) -> float | None:
    return None if value is None else require_finite(value, where)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 168:
        raise InvalidInput(f"{where} must be a whole number of hourly buckets from 1 to 168, got {value!r}")
    return value


def statistic_of(row: q.RollupRow, statistic: str) -> float:
    return {
        "p50": row.p50,
        "p95": row.p95,
        "p99": row.p99,
        "mean": row.value_mean,
        "min": row.value_min,
        "max": row.value_max,
    }[statistic]


def judge(rule: AlertRule, resolve_after: int, buckets: Sequence[q.RollupRow]) -> str:
    """`breach` when the last `rule.buckets` buckets all breach, `healthy` when the last `resolve_after` all
    hold, `unknown` otherwise (too few buckets, or mixed)."""
    ordered = sorted(buckets, key=lambda b: b.bucket_start)
    values = [statistic_of(b, rule.statistic) for b in ordered]
    if len(values) >= rule.buckets and all(rule.breached(v) for v in values[-rule.buckets :]):
        return "breach"
    if len(values) >= resolve_after and not any(rule.breached(v) for v in values[-resolve_after:]):
        return "healthy"
    return "unknown"


def day_keys(hours: Sequence[q.BucketKey]) -> list[q.BucketKey]:
    """The distinct UTC days of hour buckets."""
    days = {
        (k.deployment_id, k.metric_name, k.bucket_start.astimezone(UTC).replace(hour=0, minute=0, second=0))
        for k in hours
    }
    return [q.BucketKey(*d) for d in sorted(days, key=lambda d: (str(d[0]), d[1], d[2]))]


def backfill_windows(first: datetime, last: datetime, days: int = BACKFILL_DAYS) -> Iterator[tuple[datetime, datetime]]:
    """Whole-UTC-day windows [start, end) covering first..last, `days` days each (day rollups never straddle)."""
    start = first.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stop = last.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while start < stop:
        end = min(start + timedelta(days=days), stop)
        yield start, end
        start = end


# Which step of a finished run was best, per metric: a name heuristic for the run summary only (`best_step`, a
# display aid). Promotion gates never guess a direction: they use the policy's `metric_directions`.
RUN_SUMMARY_LOWER_IS_BETTER = r"(rmse|mse|mae|mape|smape|loss|error|latency|brier|perplexity|wer|cer|fpr|fnr)"


def lower_is_better_pattern() -> str:
    """Metric names where a lower value is the better step of a run, as a PostgreSQL regular expression."""
    return RUN_SUMMARY_LOWER_IS_BETTER


class AggregationFailed(MlopsError):
    """Some organization could not be aggregated; `summary` holds what every organization did."""

    exit_code = 1

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


# --- tasks --------------------------------------------------------------------------------------------------


@dataclass
class OrganizationRun:
    """What one aggregation run did for one organization."""

    organization: str
    status: str = "done"  # done | busy (another run holds the organization) | failed
    backfilled_windows: int = 0
    hour_buckets: int = 0
    day_buckets: int = 0
    rollups_written: int = 0
    alerts_opened: int = 0
    alerts_resolved: int = 0
    runs_summarised: int = 0
    experiments_completed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@task(name="list-organizations", **IO_TASK)
def list_organizations(organization: str | None) -> tuple[list[tuple[uuid.UUID, str]], list[str]]:
    """Organizations to aggregate (one, or every active one) and notes about skipped ones."""
    # Cross-organization listing: the scheduler has no tenant yet, so this one read bypasses RLS.
    with system_session() as session:
        orgs = active_organizations(session=session)
    if organization:
        orgs = [o for o in orgs if o[1] == organization]
        if not orgs:
            raise InvalidInput(f"unknown organization '{organization}'")
    chosen, notes = [], []
    for org_id, slug, status in orgs:
        if not subscription_active(status):
            notes.append(f"skipped organization '{slug}': subscription is {status}")
            continue
        chosen.append((org_id, slug))
    return chosen, notes


@task(name="roll-up-organization", **IO_TASK)
def roll_up_organization(org: tuple[uuid.UUID, str], since: datetime | None) -> OrganizationRun:
    """Backfill the organization once (or from `since`), then recompute every invalidated bucket."""
    org_id, slug = org
    run = OrganizationRun(organization=slug)
    with session_scope(org_id) as session:
        backfilled = q.aggregation_state(session=session, organization_id=org_id) is not None
        first, last = q.raw_time_range(session=session, organization_id=org_id)
    if since is not None or not backfilled:
        if first is not None and last is not None:
            start = max(first, since) if since is not None else first
            for window in backfill_windows(start, last):
                with session_scope(org_id) as session:
                    if not q.try_lock_organization(session=session, organization_id=org_id):
                        run.status = "busy"
                        return run
                    q.set_work_mem(session=session)
                    for granularity in ("hour", "day"):
                        run.rollups_written += q.backfill_window(
                            session=session,
                            organization_id=org_id,
                            granularity=granularity,
                            start=window[0],
                            end=window[1],
                        )
                run.backfilled_windows += 1
        with session_scope(org_id) as session:
            q.mark_run(session=session, organization_id=org_id, backfilled=True)
    while True:
        with session_scope(org_id) as session:
            if not q.try_lock_organization(session=session, organization_id=org_id):
                run.status = "busy"
                return run
            q.set_work_mem(session=session)
            hours = q.claim_invalidations(session=session, organization_id=org_id, limit=CLAIM_BATCH)
            if not hours:
                q.mark_run(session=session, organization_id=org_id, backfilled=True)
                return run
            days = day_keys(hours)
            run.rollups_written += q.recompute_buckets(
                session=session, organization_id=org_id, granularity="hour", keys=hours
            )
            run.rollups_written += q.recompute_buckets(
                session=session, organization_id=org_id, granularity="day", keys=days
            )
            run.hour_buckets += len(hours)
            run.day_buckets += len(days)


@task(name="evaluate-metric-alerts", **IO_TASK)
def evaluate_alerts(org: tuple[uuid.UUID, str]) -> tuple[int, int, list[str]]:
    """Open, update or resolve each deployment's metric alerts from its latest hourly rollups.

    Returns (opened, resolved, notes); a deployment with an invalid alert configuration is skipped with a note.
    """
    org_id, slug = org
    principal = system_principal(org_id, slug)
    opened = resolved = 0
    notes: list[str] = []
    with session_scope(org_id) as session:
        deployments = q.live_deployments(session=session)
        policies: dict[uuid.UUID, AlertPolicy] = {}
        for d in deployments:
            try:
                policies[d.id] = alert_policy(d.config)
            except InvalidInput as exc:
                notes.append(f"{d.name} ({d.environment}): alert rules skipped: {exc}")
        metrics = sorted({r.metric for p in policies.values() for r in p.rules})
        horizon = max([max(r.buckets, p.resolve_after) for p in policies.values() for r in p.rules] or [1])
        rows = q.recent_hourly_rollups(session=session, metrics=metrics, hours=horizon + 1) if metrics else []
    series: dict[tuple[uuid.UUID, str], list[q.RollupRow]] = {}
    for row in rows:
        series.setdefault((row.deployment_id, row.metric_name), []).append(row)
    for d in deployments:
        policy = policies.get(d.id)
        if policy is None:
            continue
        for rule in policy.rules:
            buckets = series.get((d.id, rule.metric), [])
            verdict = judge(rule, policy.resolve_after, buckets)
            if verdict == "unknown":
                continue
            with session_scope(org_id) as session:
                change = _apply_verdict(session, principal, d, rule, verdict, buckets)
            opened += change == "opened"
            resolved += change == "resolved"
    return opened, resolved, notes


def _apply_verdict(session, principal, deployment: q.MonitoredDeployment, rule: AlertRule, verdict: str, buckets):
    """One alert change, its audit row and its event, in the caller's transaction."""
    current = q.unresolved_alert(session=session, deployment_id=deployment.id, alert_type=rule.alert_type)
    latest = sorted(buckets, key=lambda b: b.bucket_start)[-1]
    value = statistic_of(latest, rule.statistic)
    message = (
        f"{deployment.name} ({deployment.environment}): {rule.describe()}; latest {rule.statistic} {value:.6g} "
        f"in the hour from {latest.bucket_start.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    payload = {
        "deployment": deployment.name,
        "environment": deployment.environment,
        "alert_type": rule.alert_type,
        "metric": rule.metric,
        "statistic": rule.statistic,
        "value": value,
        "limit": rule.maximum if rule.maximum is not None else rule.minimum,
    }
    if verdict == "breach":
        if current is not None:  # still breaching: keep it (acknowledged stays acknowledged), refresh the message
            q.update_alert_message(session=session, alert_id=current.id, message=message)
            return "updated"
        alert_id = q.open_alert(
            session=session,
            organization_id=principal.organization_id,
            deployment_id=deployment.id,
            alert_type=rule.alert_type,
            severity=rule.severity,
            title=f"{rule.alert_type.replace('_', ' ')}: {deployment.name} ({deployment.environment})",
            message=message,
        )
        if alert_id is None:
            return "raced"
        action, event = "alert.open", "alert.opened"
    else:
        if current is None:
            return "none"
        alert_id = current.id
        q.resolve_alert(session=session, alert_id=alert_id)
        action, event = "alert.resolve", "alert.resolved"
    record_audit(
        session,
        principal=principal,
        action=action,
        resource_type="alert",
        resource_id=alert_id,
        details={**payload, "message": message},
    )
    emit_event(
        session,
        organization_id=principal.organization_id,
        trigger_type="alert",
        event_type=event,
        severity=rule.severity if verdict == "breach" else "info",
        project_id=deployment.project_id,
        deployment_id=deployment.id,
        payload={**payload, "alert_id": str(alert_id), "message": message},
        dedup_key=f"{event}:{alert_id}",
    )
    return "opened" if verdict == "breach" else "resolved"


@task(name="summarise-experiments", **IO_TASK)
def summarise_experiments(org: tuple[uuid.UUID, str]) -> tuple[int, int]:
    """Summarise ended runs and complete finished experiments (with an `experiment_complete` event each)."""
    org_id, _ = org
    with session_scope(org_id) as session:
        runs = q.summarise_ended_runs(session=session, lower_is_better=lower_is_better_pattern())
        finished = q.complete_finished_experiments(session=session)
        for e in finished:
            emit_event(
                session,
                organization_id=org_id,
                trigger_type="experiment_complete",
                event_type=f"experiment.{e.status}",
                severity="info",
                project_id=e.project_id,
                payload={
                    "experiment": e.name,
                    "experiment_id": str(e.id),
                    "status": e.status,
                    "runs": e.runs,
                    "completed_runs": e.completed_runs,
                },
                dedup_key=f"experiment_complete:{e.id}",
            )
    return runs, len(finished)


def read_metrics(
    principal: Principal,
    *,
    project: str,
    deployment: str,
    environment: str,
    metric: str | None,
    granularity: str,
    since: datetime,
) -> list[q.RollupRow]:
    """A deployment's rollups since `since` (raw points where no rollup exists yet), for a reader of the project."""
    with session_scope(principal.organization_id) as session:
        deployment_id, project_id = q.deployment_by_ref(
            session=session, project=project, name=deployment, environment=environment
        )
        require(principal, Action.MODEL_READ, project_id, what=f"{project}/{deployment}")
        return q.read_series(
            session=session, deployment_id=deployment_id, granularity=granularity, since=since, metric=metric
        )
