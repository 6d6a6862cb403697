"""Metric aggregation rules (pure): alert rules and their verdicts, bucket arithmetic, backfill windows.

Rollups are computed by PostgreSQL (`db/queries/metrics.py`); `tasks.metrics.service` decides which buckets, in
which transactions, and what the fresh rollups mean for a deployment's alerts, with these rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidInput
from core.numbers import require_finite
from core.vocabulary import ALERT_SEVERITIES
from db.queries.metrics import BucketKey, RollupRow

STATISTICS = ("p50", "p95", "p99", "mean", "min", "max")
SEVERITIES = tuple(s.value for s in ALERT_SEVERITIES)
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


def statistic_of(row: RollupRow, statistic: str) -> float:
    return {
        "p50": row.p50,
        "p95": row.p95,
        "p99": row.p99,
        "mean": row.value_mean,
        "min": row.value_min,
        "max": row.value_max,
    }[statistic]


def judge(rule: AlertRule, resolve_after: int, buckets: Sequence[RollupRow]) -> str:
    """`breach` when the last `rule.buckets` buckets all breach, `healthy` when the last `resolve_after` all
    hold, `unknown` otherwise (too few buckets, or mixed)."""
    ordered = sorted(buckets, key=lambda b: b.bucket_start)
    values = [statistic_of(b, rule.statistic) for b in ordered]
    if len(values) >= rule.buckets and all(rule.breached(v) for v in values[-rule.buckets :]):
        return "breach"
    if len(values) >= resolve_after and not any(rule.breached(v) for v in values[-resolve_after:]):
        return "healthy"
    return "unknown"


def day_keys(hours: Sequence[BucketKey]) -> list[BucketKey]:
    """The distinct UTC days of hour buckets."""
    days = {
        (k.deployment_id, k.metric_name, k.bucket_start.astimezone(UTC).replace(hour=0, minute=0, second=0))
        for k in hours
    }
    return [BucketKey(*d) for d in sorted(days, key=lambda d: (str(d[0]), d[1], d[2]))]


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
