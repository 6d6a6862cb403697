"""Registry rules: version strings, model references, stage transitions, promotion policy and its gates.

Pure functions over plain data; the tasks that read and write the registry live in `tasks/promotion.py` and
`tasks/registration.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.errors import InvalidInput
from core.numbers import finite_or_none

STAGES = ("development", "staging", "production", "archived")
Stage = Literal["development", "staging", "production", "archived"]
TransitionKind = Literal["promotion", "demotion", "archive", "noop"]

# SemVer 2.0.0: MAJOR.MINOR.PATCH[-prerelease][+build], no leading zeros in numeric identifiers.
_NUM = r"0|[1-9]\d*"
_PRE = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE}(?:\.{_PRE})*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
# Metrics where lower is better, by name (a policy's `greater_is_better` overrides).
LOWER_IS_BETTER = re.compile(r"(rmse|mse|mae|mape|smape|loss|error|latency|brier|perplexity|wer|cer|fpr|fnr)", re.I)
BLOCKING_SEVERITIES = ("critical", "high")


def validate_version(text: str) -> str:
    """The version string if it is SemVer (1.2.0, 2.0.0-rc.1); InvalidInput otherwise."""
    if len(text) > 50 or not SEMVER.match(text):
        raise InvalidInput(f"malformed version '{text}': expected semantic versioning such as 1.2.0 or 2.0.0-rc.1")
    return text


def parse_model_ref(ref: str) -> tuple[str, str, str]:
    """`ORG/PROJECT/MODEL` → (organization slug, project slug, model name); the name may contain spaces."""
    parts = ref.split("/", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InvalidInput(f"'{ref}' is not ORG/PROJECT/MODEL (e.g. acme/fraud-detection/Credit Card Fraud Model)")
    return parts[0].strip(), parts[1].strip(), parts[2].strip()


def validate_stage(stage: str) -> Stage:
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage '{stage}'; expected one of {', '.join(STAGES)}")
    return stage  # type: ignore[return-value]


def classify_transition(current: str, target: str, *, allow_skip: bool = False) -> TransitionKind:
    """What moving a version from `current` to `target` is; InvalidInput for an illegal transition.

    development → staging → production; any → archived; production → staging is a demotion;
    development → production only where the project allows skipping staging; archived is final.
    """
    validate_stage(target)
    if current == target:
        return "noop"
    if current == "archived":
        raise InvalidInput("illegal transition archived → " + target + ": archived versions cannot be promoted")
    if target == "archived":
        return "archive"
    if (current, target) in (("development", "staging"), ("staging", "production")):
        return "promotion"
    if (current, target) == ("production", "staging"):
        return "demotion"
    if (current, target) == ("development", "production"):
        if allow_skip:
            return "promotion"
        raise InvalidInput(
            "illegal transition development → production: promote to staging first "
            "(or allow it with the project setting promotion.allow_skip_staging)"
        )
    raise InvalidInput(f"illegal transition {current} → {target}")


@dataclass(frozen=True)
class PromotionPolicy:
    """How a model is gated; from `projects.settings["promotion"]`, overridden by `models.metadata["promotion"]`."""

    primary_metric: str | None = None
    greater_is_better: bool | None = None  # None: by the metric's name
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    threshold: float | None = None  # absolute bound on the primary metric (MLflow's `threshold`)
    required_metrics: tuple[str, ...] = ()
    guard_metrics: Mapping[str, float] = field(default_factory=dict)  # metric -> tolerated worsening
    min_hours_in_staging: float = 24.0
    blocking_alert_severities: tuple[str, ...] = BLOCKING_SEVERITIES
    require_no_drift: bool = True
    allow_skip_staging: bool = False
    staging_gates: tuple[str, ...] = ("required_metrics",)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["guard_metrics"] = dict(self.guard_metrics)
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
            min_hours_in_staging=float(merged.get("min_hours_in_staging", 24.0)),
            blocking_alert_severities=tuple(merged.get("blocking_alert_severities", BLOCKING_SEVERITIES)),
            require_no_drift=bool(merged.get("require_no_drift", True)),
            allow_skip_staging=bool(merged.get("allow_skip_staging", False)),
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
    return policy


def greater_is_better(metric: str, policy: PromotionPolicy) -> bool:
    """Direction of a metric: the policy's for its primary metric, otherwise by name (rmse, loss: lower)."""
    if metric == policy.primary_metric and policy.greater_is_better is not None:
        return policy.greater_is_better
    return not LOWER_IS_BETTER.search(metric)


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
    blocking_alerts: Sequence[Mapping[str, Any]] = ()  # unresolved alerts on its staging deployments
    latest_drift: Mapping[str, Any] | None = None  # {"is_drift_detected": bool, "period_end": ..., ...}


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
            failures.extend(_guard(guard, tolerance, inputs, champion))
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


def _guard(metric: str, tolerance: float, inputs: GateInputs, champion: Champion) -> list[str]:
    candidate = finite_or_none(inputs.candidate_metrics.get(metric))
    baseline = finite_or_none(champion.metrics.get(metric))
    if candidate is None:
        return [f"guard metric '{metric}' missing from the candidate"]
    if baseline is None:
        return []  # nothing to guard against
    higher = not LOWER_IS_BETTER.search(metric)
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


def _open_alerts(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    blocking = [a for a in inputs.blocking_alerts if a.get("severity") in policy.blocking_alert_severities]
    if blocking:
        titles = "; ".join(f"{a.get('severity')}: {a.get('title')}" for a in blocking)
        return GateResult(
            "open_alerts", False, f"unresolved alert(s) on its staging deployment: {titles}", len(blocking), 0
        )
    return GateResult("open_alerts", True, "no unresolved critical/high alert on its staging deployment", 0, 0)


def _drift(policy: PromotionPolicy, inputs: GateInputs) -> GateResult:
    report = inputs.latest_drift
    if not policy.require_no_drift:
        return GateResult("drift", True, "drift gate disabled")
    if report is None:
        return GateResult("drift", True, "no drift report for its staging deployment")
    if report.get("is_drift_detected"):
        return GateResult(
            "drift", False, f"latest drift report (to {report.get('period_end')}) detected drift",
            report.get("drift_score"), "no drift",
        )  # fmt: skip
    return GateResult("drift", True, f"latest drift report (to {report.get('period_end')}) shows no drift")


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


def _optional_bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"promotion.{key} must be true or false")
    return value
