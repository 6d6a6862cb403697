"""Promotion rules (pure): the promotion policy, metric directions and the gates a version must pass.

Plain data in and out; the transaction that moves a stage is `tasks.promotion.service`, the stage life cycle
itself `tasks.registry.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import InvalidInput
from core.numbers import finite_or_none
from tasks.registry.rules import TransitionKind

# Direction of the common metrics, by exact name (mirrored in the README). Any other metric used as the primary
# or a guard metric needs `promotion.metric_directions` ({"answer_accuracy": "higher"}): a name is never guessed
# from a substring (`answer_accuracy`, `cancer_recall`, `lower_bound_auc` would be guessed wrong).
HIGHER = "higher"
LOWER = "lower"
DEFAULT_METRIC_DIRECTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "accuracy",
            "balanced_accuracy",
            "auc",
            "roc_auc",
            "pr_auc",
            "average_precision",
            "precision",
            "recall",
            "f1",
            "f1_score",
            "specificity",
            "r2",
            "ndcg",
            "map",
            "mrr",
            "mcc",
            "kappa",
            "throughput_rps",
        ),
        HIGHER,
    ),
    **dict.fromkeys(
        (
            "rmse",
            "mse",
            "mae",
            "mape",
            "smape",
            "log_loss",
            "logloss",
            "loss",
            "val_loss",
            "brier_score",
            "error_rate",
            "fpr",
            "fnr",
            "perplexity",
            "wer",
            "cer",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "latency_ms",
        ),
        LOWER,
    ),
}
BLOCKING_SEVERITIES = ("critical", "high")


@dataclass(frozen=True)
class PromotionPolicy:
    """How a model is gated; from `projects.settings["promotion"]`, overridden by `models.metadata["promotion"]`."""

    primary_metric: str | None = None
    greater_is_better: bool | None = None  # the primary metric's direction; None: `metric_directions`
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    threshold: float | None = None  # absolute bound on the primary metric (MLflow's `threshold`)
    required_metrics: tuple[str, ...] = ()
    guard_metrics: Mapping[str, float] = field(default_factory=dict)  # metric -> tolerated worsening
    metric_directions: Mapping[str, str] = field(default_factory=dict)  # metric -> higher | lower (over defaults)
    min_hours_in_staging: float = 24.0
    blocking_alert_severities: tuple[str, ...] = BLOCKING_SEVERITIES
    require_no_drift: bool = True
    # Evidence: without it a gate fails, unless the policy says otherwise (and the gate says so).
    require_staging_deployment: bool = True  # open_alerts and drift need a staging deployment serving it
    require_drift_report: bool = True  # a drift report of each staging deployment...
    max_drift_report_age_hours: float = 24.0  # ...whose window ended at most this long ago
    allow_skip_staging: bool = False
    staging_gates: tuple[str, ...] = ("required_metrics",)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["guard_metrics"] = dict(self.guard_metrics)
        data["metric_directions"] = dict(self.metric_directions)
        return data


POLICY_KEYS = frozenset(PromotionPolicy.__dataclass_fields__)
GATE_NAMES = ("required_metrics", "champion_challenger", "staging_soak", "open_alerts", "drift")
DEFAULT_PRIMARY = {"classification": "accuracy", "regression": "rmse"}


def promotion_policy(
    project_settings: Mapping[str, Any] | None, model_metadata: Mapping[str, Any] | None, *, model_type: str = ""
) -> PromotionPolicy:
    """The effective policy: defaults, then the project's `promotion` settings, then the model's."""
    merged: dict[str, Any] = {}
    for source, where in ((project_settings, "project settings"), (model_metadata, "model metadata")):
        section = (source or {}).get("promotion") or {}
        if not isinstance(section, Mapping):
            raise InvalidInput(f"{where}: 'promotion' must be an object")
        unknown = sorted(set(section) - POLICY_KEYS)
        if unknown:
            raise InvalidInput(f"{where}: unknown promotion setting(s) {', '.join(unknown)}")
        merged.update(section)
    try:
        policy = PromotionPolicy(
            primary_metric=merged.get("primary_metric", DEFAULT_PRIMARY.get(model_type)),
            greater_is_better=_optional_bool(merged, "greater_is_better"),
            min_absolute_change=_optional_number(merged, "min_absolute_change"),
            min_relative_change=_optional_number(merged, "min_relative_change"),
            threshold=_optional_number(merged, "threshold"),
            required_metrics=tuple(merged.get("required_metrics", ())),
            guard_metrics={str(k): float(v) for k, v in dict(merged.get("guard_metrics", {})).items()},
            metric_directions={str(k): v for k, v in dict(merged.get("metric_directions", {})).items()},
            min_hours_in_staging=float(merged.get("min_hours_in_staging", 24.0)),
            blocking_alert_severities=tuple(merged.get("blocking_alert_severities", BLOCKING_SEVERITIES)),
            require_no_drift=_flag(merged, "require_no_drift", True),
            require_staging_deployment=_flag(merged, "require_staging_deployment", True),
            require_drift_report=_flag(merged, "require_drift_report", True),
            max_drift_report_age_hours=float(merged.get("max_drift_report_age_hours", 24.0)),
            allow_skip_staging=_flag(merged, "allow_skip_staging", False),
            staging_gates=tuple(merged.get("staging_gates", ("required_metrics",))),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed promotion settings: {exc}") from None
    unknown_gates = sorted(set(policy.staging_gates) - set(GATE_NAMES))
    if unknown_gates:
        raise InvalidInput(f"promotion.staging_gates: unknown gate(s) {', '.join(unknown_gates)}")
    if policy.min_relative_change is not None and not 0 <= policy.min_relative_change <= 1:
        raise InvalidInput("promotion.min_relative_change must be between 0 and 1")
    if policy.min_absolute_change is not None and policy.min_absolute_change < 0:
        raise InvalidInput("promotion.min_absolute_change must not be negative")
    if policy.max_drift_report_age_hours <= 0:
        raise InvalidInput("promotion.max_drift_report_age_hours must be positive")
    bad = sorted(m for m, d in policy.metric_directions.items() if d not in (HIGHER, LOWER))
    if bad:
        raise InvalidInput(f"promotion.metric_directions: {', '.join(bad)} must be 'higher' or 'lower'")
    for metric in [*([policy.primary_metric] if policy.primary_metric else []), *policy.guard_metrics]:
        greater_is_better(metric, policy)  # every compared metric has a declared direction
    return policy


def greater_is_better(metric: str, policy: PromotionPolicy) -> bool:
    """Direction of a metric: `greater_is_better` for the primary metric, else `metric_directions`, else the
    documented defaults (`DEFAULT_METRIC_DIRECTIONS`, exact names). InvalidInput when none declares it."""
    if metric == policy.primary_metric and policy.greater_is_better is not None:
        return policy.greater_is_better
    direction = policy.metric_directions.get(metric) or DEFAULT_METRIC_DIRECTIONS.get(metric)
    if direction is None:
        raise InvalidInput(
            f"direction of metric '{metric}' is unknown: declare it in promotion.metric_directions "
            f'(e.g. {{"{metric}": "higher"}} or "lower")'
        )
    return direction == HIGHER


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str
    observed: Any = None
    expected: Any = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Champion:
    """The version currently in production, whose metrics a candidate must beat."""

    version: str
    metrics: Mapping[str, Any]


@dataclass(frozen=True)
class GateInputs:
    """What the gates look at, gathered by the promotion task inside its transaction."""

    target_stage: str
    candidate_metrics: Mapping[str, Any]
    champion: Champion | None = None
    hours_in_staging: float | None = None  # None: no record of entering staging
    staging_deployments: Sequence[str] = ()  # names of the staging deployments serving it
    blocking_alerts: Sequence[Mapping[str, Any]] = ()  # unresolved alerts on its staging deployments
    # staging deployment name -> its latest drift report ({"is_drift_detected", "age_hours", "period_end",
    # "incomplete_columns", ...}) or None when it has none
    drift_reports: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)


def gates_for(policy: PromotionPolicy, target_stage: str, kind: TransitionKind) -> tuple[str, ...]:
    """Which gates apply: all of them for production, the policy's `staging_gates` for staging, none else."""
    if kind != "promotion":
        return ()
    if target_stage == "production":
        return GATE_NAMES
    if target_stage == "staging":
        return tuple(g for g in GATE_NAMES if g in policy.staging_gates)
    return ()


def evaluate_gates(policy: PromotionPolicy, inputs: GateInputs, gates: Sequence[str]) -> list[GateResult]:
    """Evaluate each gate in order and return every result (the caller decides what a failure means)."""
    evaluators = {
        "required_metrics": _required_metrics,
        "champion_challenger": _champion_challenger,
        "staging_soak": _staging_soak,
        "open_alerts": _open_alerts,
        "drift": _drift,
    }
    return [evaluators[g](policy, inputs) for g in gates]


def _required_metrics(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    required = list(
        dict.fromkeys([*policy.required_metrics, *([policy.primary_metric] if policy.primary_metric else [])])
    )
    missing = [m for m in required if finite_or_none(inputs.candidate_metrics.get(m)) is None]
    if missing:
        return GateResult("required_metrics", False, f"missing metric(s): {', '.join(missing)}", missing, required)
    return GateResult(
        "required_metrics", True, f"present: {', '.join(required) or 'none required'}", required, required
    )


def _champion_challenger(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    metric = policy.primary_metric
    if not metric:
        return GateResult("champion_challenger", True, "no primary metric configured")
    candidate = finite_or_none(inputs.candidate_metrics.get(metric))
    if candidate is None:
        return GateResult("champion_challenger", False, f"candidate has no '{metric}'")
    higher = greater_is_better(metric, policy)
    failures: list[str] = []
    if policy.threshold is not None and not (
        candidate >= policy.threshold if higher else candidate <= policy.threshold
    ):
        failures.append(
            f"{metric}={candidate:g} is {'below' if higher else 'above'} the threshold {policy.threshold:g}"
        )
    champion = inputs.champion
    baseline = finite_or_none(champion.metrics.get(metric)) if champion else None
    if champion is not None and baseline is None:
        failures.append(f"production version {champion.version} has no '{metric}' to compare with")
    elif champion is not None and baseline is not None:
        failures.extend(_beats(metric, candidate, baseline, higher, policy, champion.version))
        for guard, tolerance in policy.guard_metrics.items():
            failures.extend(_guard(guard, tolerance, policy, inputs, champion))
    observed = {"metric": metric, "candidate": candidate, "champion": baseline}
    if failures:
        return GateResult("champion_challenger", False, "; ".join(failures), observed, _expected(policy, higher))
    against = (
        f"production {champion.version} ({baseline:g})"
        if champion and baseline is not None
        else "no production version"
    )
    return GateResult(
        "champion_challenger", True, f"{metric}={candidate:g} vs {against}", observed, _expected(policy, higher)
    )


def _beats(
    metric: str, candidate: float, baseline: float, higher: bool, policy: PromotionPolicy, version: str
) -> list[str]:
    """MLflow MetricThreshold semantics: strict improvement by the configured deltas; not worse otherwise."""
    failures = []
    sign = 1 if higher else -1
    better_word = "higher" if higher else "lower"
    if policy.min_absolute_change is not None:
        bound = baseline + sign * policy.min_absolute_change
        if not (candidate > bound if higher else candidate < bound):
            failures.append(
                f"{metric}={candidate:g} must be {better_word} than production {version}'s {baseline:g} "
                f"by more than {policy.min_absolute_change:g}"
            )
    if policy.min_relative_change is not None:
        bound = baseline * (1 + sign * policy.min_relative_change) if baseline else 0.0
        if not (candidate > bound if higher else candidate < bound):
            failures.append(
                f"{metric}={candidate:g} must be {better_word} than production {version}'s {baseline:g} "
                f"by more than {policy.min_relative_change:.1%}"
            )
    no_delta = policy.min_absolute_change is None and policy.min_relative_change is None
    if no_delta and (candidate < baseline if higher else candidate > baseline):
        failures.append(f"{metric}={candidate:g} is worse than production {version}'s {baseline:g}")
    return failures


def _guard(metric: str, tolerance: float, policy: PromotionPolicy, inputs: GateInputs, champion: Champion) -> list[str]:
    candidate = finite_or_none(inputs.candidate_metrics.get(metric))
    baseline = finite_or_none(champion.metrics.get(metric))
    if candidate is None:
        return [f"guard metric '{metric}' missing from the candidate"]
    if baseline is None:
        return []  # nothing to guard against
    higher = greater_is_better(metric, policy)
    worse_by = (baseline - candidate) if higher else (candidate - baseline)
    if worse_by > tolerance:
        return [f"guard {metric}={candidate:g} is worse than production's {baseline:g} by more than {tolerance:g}"]
    return []


def _staging_soak(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    need = policy.min_hours_in_staging
    hours = inputs.hours_in_staging
    if need <= 0:
        return GateResult("staging_soak", True, "no minimum time in staging", hours, need)
    if hours is None:
        return GateResult("staging_soak", False, "no record of when it entered staging", None, need)
    if hours < need:
        return GateResult("staging_soak", False, f"{hours:.1f} h in staging, needs {need:g} h", round(hours, 2), need)
    return GateResult("staging_soak", True, f"{hours:.1f} h in staging (≥ {need:g} h)", round(hours, 2), need)


def _no_staging(gate: str, policy: PromotionPolicy) -> GateResult:
    if policy.require_staging_deployment:
        detail = "no evidence: no staging deployment serves it (the policy's require_staging_deployment)"
        return GateResult(gate, False, detail, None, "a staging deployment")
    detail = "no staging deployment serves it; the policy does not require one (require_staging_deployment: false)"
    return GateResult(gate, True, detail)


def _open_alerts(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    if not inputs.staging_deployments:
        return _no_staging("open_alerts", policy)
    blocking = [a for a in inputs.blocking_alerts if a.get("severity") in policy.blocking_alert_severities]
    if blocking:
        titles = "; ".join(f"{a.get('severity')}: {a.get('title')}" for a in blocking)
        return GateResult(
            "open_alerts", False, f"unresolved alert(s) on its staging deployment: {titles}", len(blocking), 0
        )
    severities = "/".join(policy.blocking_alert_severities) or "blocking"
    where = ", ".join(inputs.staging_deployments)
    return GateResult(
        "open_alerts", True, f"no unresolved {severities} alert on its staging deployment ({where})", 0, 0
    )


def _drift(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    """Each staging deployment's latest report must be fresh, complete and show no drift. A missing, stale or
    incomplete report is no evidence: it fails unless the policy's `require_drift_report` is false."""
    if not policy.require_no_drift:
        return GateResult("drift", True, "drift gate disabled (require_no_drift: false)")
    if not inputs.staging_deployments:
        return _no_staging("drift", policy)
    max_age = policy.max_drift_report_age_hours
    failures, missing, fine = [], [], []
    for name in inputs.staging_deployments:
        report = inputs.drift_reports.get(name)
        if report is None:
            missing.append(f"no drift report for staging deployment {name}")
            continue
        age = report.get("age_hours")
        if report.get("is_drift_detected"):
            failures.append(f"latest drift report of {name} (to {report.get('period_end')}) detected drift")
        elif report.get("incomplete_columns"):
            untested = ", ".join(report["incomplete_columns"])
            missing.append(f"latest drift report of {name} is incomplete (untested: {untested})")
        elif age is None:
            missing.append(f"latest drift report of {name} has no window end")
        elif age > max_age:
            missing.append(f"latest drift report of {name} ended {age:.1f} h ago, older than {max_age:g} h")
        else:
            fine.append(f"{name}: no drift in the report ending {age:.1f} h ago")
    if failures:
        return GateResult("drift", False, "; ".join(failures + missing), len(failures), "no drift")
    if missing and policy.require_drift_report:
        detail = "no evidence: " + "; ".join(missing) + " (the policy's require_drift_report)"
        return GateResult("drift", False, detail, None, f"a complete report ≤ {max_age:g} h old")
    if missing:
        detail = "; ".join(fine + missing) + "; the policy does not require a report (require_drift_report: false)"
        return GateResult("drift", True, detail)
    return GateResult("drift", True, "; ".join(fine))


def _expected(policy: PromotionPolicy, higher: bool) -> dict[str, Any]:
    return {
        "greater_is_better": higher,
        "min_absolute_change": policy.min_absolute_change,
        "min_relative_change": policy.min_relative_change,
        "threshold": policy.threshold,
    }


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"promotion.{key} must be a number")
    return float(value)


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"promotion.{key} must be true or false")
    return value


def _optional_bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"promotion.{key} must be true or false")
    return value
