"""Rollout rules without I/O: the serving configuration, traffic splits, step health, bake verdicts, leases."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import InvalidInput
from services.serving import BACKENDS, ServingStatus

DEFAULTS: dict[str, Any] = {
    "steps": [100],
    "bake_seconds": 300.0,
    "health_timeout_seconds": 300.0,
    "poll_interval_seconds": 2.0,
    "max_anomalies": 3,
    # how long past a step's budget a silent rollout still counts as alive (its lease); then it is stale
    "lease_grace_seconds": 30.0,
}
KEYS = frozenset({"backend", "control_url", *DEFAULTS})
# which registry stages a deployment of each environment may serve (a higher stage is always fine)
STAGES_FOR_ENVIRONMENT = {
    "production": ("production",),
    "staging": ("staging", "production"),
    "development": ("development", "staging", "production"),
}


@dataclass(frozen=True)
class ServingConfig:
    """`deployment_config["serving"]` validated, defaults filled in, CLI overrides applied."""

    backend: str
    control_url: str
    steps: tuple[int, ...] = (100,)
    bake_seconds: float = 300.0
    health_timeout_seconds: float = 300.0
    poll_interval_seconds: float = 2.0
    max_anomalies: int = 3
    lease_grace_seconds: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps)}


@dataclass(frozen=True)
class Overrides:
    """CLI flags that override the configuration for one run."""

    steps: tuple[int, ...] | None = None
    bake_seconds: float | None = None
    health_timeout_seconds: float | None = None


def parse_steps(text: str | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """`"10,50,100"` (or a list) as validated steps: increasing whole percentages ending at 100."""
    if isinstance(text, str):
        try:
            values: list[Any] = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise InvalidInput(
                f"steps must be comma-separated whole percentages like 10,50,100, got '{text}'"
            ) from None
    else:
        values = list(text)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise InvalidInput(f"steps must be a non-empty list of whole percentages, got {text!r}")
    if any(not 0 < v <= 100 for v in values) or any(b <= a for a, b in itertools.pairwise(values)):
        raise InvalidInput(f"steps must increase strictly within 1..100, got {values}")
    if values[-1] != 100:
        raise InvalidInput(f"the last step must be 100 (all traffic on the new version), got {values}")
    return tuple(values)


def _seconds(config: dict[str, Any], key: str, *, positive: bool) -> float:
    value = config.get(key, DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"serving.{key} must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise InvalidInput(f"serving.{key} must be {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def serving_config(
    deployment_config: dict[str, Any] | None, overrides: Overrides | None = None
) -> ServingConfig | None:
    """The deployment's serving configuration, or None for a registry-only deployment (no `serving` block).

    Raises InvalidInput naming the first bad key."""
    raw = (deployment_config or {}).get("serving")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput("deployment_config.serving must be an object")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise InvalidInput(f"unknown serving key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    backend = raw.get("backend")
    if backend not in BACKENDS:
        raise InvalidInput(f"serving.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    control_url = raw.get("control_url")
    parts = urlsplit(control_url) if isinstance(control_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"serving.control_url must be an http(s) URL, got {control_url!r}")
    anomalies = raw.get("max_anomalies", DEFAULTS["max_anomalies"])
    if isinstance(anomalies, bool) or not isinstance(anomalies, int) or anomalies < 0:
        raise InvalidInput(f"serving.max_anomalies must be a whole number >= 0, got {anomalies!r}")
    overrides = overrides or Overrides()
    config = ServingConfig(
        backend=backend,
        control_url=control_url,
        steps=parse_steps(raw.get("steps", DEFAULTS["steps"])),
        bake_seconds=_seconds(raw, "bake_seconds", positive=False),
        health_timeout_seconds=_seconds(raw, "health_timeout_seconds", positive=True),
        poll_interval_seconds=_seconds(raw, "poll_interval_seconds", positive=True),
        max_anomalies=anomalies,
        lease_grace_seconds=_seconds(raw, "lease_grace_seconds", positive=False),
    )
    return apply_overrides(config, overrides)


def apply_overrides(config: ServingConfig, overrides: Overrides) -> ServingConfig:
    """The configuration with the run's CLI flags applied (each validated like the configuration)."""
    changes: dict[str, Any] = {}
    if overrides.steps is not None:
        changes["steps"] = parse_steps(overrides.steps)
    if overrides.bake_seconds is not None:
        changes["bake_seconds"] = _seconds({"bake_seconds": overrides.bake_seconds}, "bake_seconds", positive=False)
    if overrides.health_timeout_seconds is not None:
        changes["health_timeout_seconds"] = _seconds(
            {"health_timeout_seconds": overrides.health_timeout_seconds}, "health_timeout_seconds", positive=True
        )
    return ServingConfig(**{**asdict(config), **changes})


def validate_overrides(overrides: Overrides) -> Overrides:
    """Check the CLI flags on their own (before anything is read), so bad input fails with nothing written."""
    apply_overrides(ServingConfig(backend="http", control_url="http://check"), overrides)
    return overrides


def step_lease_seconds(config: ServingConfig | None) -> float:
    """How long one step may take before its rollout counts as dead: apply and health (each within the health
    budget), the bake, and the grace. A registry-only rollout only needs the grace."""
    if config is None:
        return DEFAULTS["lease_grace_seconds"]
    return 2 * config.health_timeout_seconds + config.bake_seconds + config.lease_grace_seconds


# --- traffic ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRef:
    """A model version as the serving platform sees it."""

    model_version_id: str
    model_version: str
    artifact_uri: str


def traffic_split(percent: int, new: VersionRef, old: VersionRef | None) -> list[dict[str, Any]]:
    """The traffic list of one step: `percent` on the new version, the rest on the old one; entries sum to 100."""
    if not 0 < percent <= 100:
        raise InvalidInput(f"a step's percent must be within 1..100, got {percent}")
    entries = [(new, percent)]
    if old is not None and old.model_version_id != new.model_version_id and percent < 100:
        entries.append((old, 100 - percent))
    return [
        {
            "model_version": ref.model_version,
            "model_version_id": ref.model_version_id,
            "artifact_uri": ref.artifact_uri,
            "percent": share,
        }
        for ref, share in entries
    ]


def split_of(traffic: list[dict[str, Any]]) -> dict[str, int]:
    """{model_version: percent} of a traffic list (entries of one version added up)."""
    split: dict[str, int] = {}
    for entry in traffic:
        split[str(entry["model_version"])] = split.get(str(entry["model_version"]), 0) + int(entry["percent"])
    return split


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str


def step_health(requested: list[dict[str, Any]], status: ServingStatus) -> Verdict:
    """Healthy when the platform reports exactly the requested split with every entry ready, and the endpoint's
    health check answered 200 (or the deployment has no endpoint to check)."""
    want = split_of(requested)
    try:
        have = split_of(status.traffic)
    except (KeyError, TypeError, ValueError):
        return Verdict(False, f"the control URL answered a malformed traffic list: {status.traffic!r}")
    if have != want:
        return Verdict(False, f"serving {_describe(have)}, requested {_describe(want)}")
    waiting = sorted(str(e.get("model_version")) for e in status.traffic if e.get("ready") is not True)
    if waiting:
        return Verdict(False, f"not ready: {', '.join(waiting)}")
    if status.endpoint_healthy is False:
        return Verdict(False, f"health check {status.health_detail}")
    return Verdict(
        True, f"serving {_describe(have)}, all ready" + ("" if status.endpoint_healthy is None else ", health 200")
    )


def _describe(split: dict[str, int]) -> str:
    return " + ".join(f"{v} {p}%" for v, p in sorted(split.items(), key=lambda kv: -kv[1])) or "nothing"


def bake_verdict(anomalies: int, max_anomalies: int) -> Verdict:
    """A bake fails when more than `max_anomalies` monitoring points recorded since the step began are anomalous."""
    if anomalies > max_anomalies:
        return Verdict(False, f"{anomalies} anomalous monitoring point(s) during the bake (at most {max_anomalies})")
    return Verdict(True, f"{anomalies} anomalous point(s) during the bake (at most {max_anomalies})")


def backoff(attempt: int, poll_interval: float, remaining: float) -> float:
    """The wait before the next try: the poll interval, doubled per consecutive error up to 8 times, never past the
    budget's end."""
    return max(0.0, min(poll_interval * (2 ** min(attempt, 3)), remaining))


def stage_fits(environment: str, stage: str | None) -> bool:
    """Whether a version in `stage` may be deployed to `environment` without --force."""
    return (stage or "development") in STAGES_FOR_ENVIRONMENT.get(environment, ())


@dataclass(frozen=True)
class StepResult:
    percent: int
    ok: bool
    detail: str
    seconds: float
    backend_seconds: float = 0.0
    traffic: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
