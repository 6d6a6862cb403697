"""Driving the serving platform through one step: apply a traffic split, wait for health, bake.

The health budget holds everything: an `apply` the platform answers with 5xx, a refused connection or a
timeout is retried with backoff until the budget ends, and so are status polls; a 4xx is final. The bake then
reads the deployment's monitoring points recorded since the step began (the database clock).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from core.errors import Conflict
from db.queries import rollout as q
from db.session import session_scope
from services.serving import BackendRejected, BackendUnavailable, DeploymentSpec, ServingBackend, backend_for
from tasks.rollout.rules import ServingConfig, StepResult, Verdict, backoff, bake_verdict, step_health

MAX_REQUEST_SECONDS = 10.0  # one HTTP request never waits longer, whatever the budget


@dataclass(frozen=True)
class Target:
    """Where a step runs: the deployment, its platform configuration, and its in-progress history row."""

    organization_id: uuid.UUID
    deployment_id: uuid.UUID
    history_id: uuid.UUID
    spec: DeploymentSpec
    config: ServingConfig
    lease_seconds: float


def _request_timeout(deadline: float) -> float:
    return max(0.05, min(MAX_REQUEST_SECONDS, deadline - time.monotonic()))


def drive(
    backend: ServingBackend,
    spec: DeploymentSpec,
    traffic: list[dict[str, Any]],
    config: ServingConfig,
    *,
    check_health: bool = True,
) -> tuple[Verdict, float]:
    """Apply `traffic` and wait until the platform serves it healthily, within `health_timeout_seconds`.

    Returns the verdict and the seconds spent waiting on the platform (requests and backoff)."""
    started = time.monotonic()
    deadline = started + config.health_timeout_seconds
    last = "no answer yet"
    errors = 0
    applied = False
    while True:
        try:
            if not applied:
                backend.apply(spec, traffic, timeout=_request_timeout(deadline))
                applied = True
                if not check_health:
                    return Verdict(True, "applied"), time.monotonic() - started
            verdict = step_health(traffic, backend.status(spec, timeout=_request_timeout(deadline)))
            if verdict.ok:
                return verdict, time.monotonic() - started
            last, errors = verdict.detail, 0
        except BackendRejected as exc:
            return Verdict(False, f"rejected: {exc}"), time.monotonic() - started
        except BackendUnavailable as exc:
            last, errors = str(exc), errors + 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = "apply" if not applied else "health"
            return (
                Verdict(False, f"{what} not reached within {config.health_timeout_seconds:g}s: {last}"),
                time.monotonic() - started,
            )
        time.sleep(backoff(errors, config.poll_interval_seconds, remaining))


def renew(target: Target, details: dict[str, Any]):
    """Extend the rollout's lease for one more step; the database time it happened. Conflict when another run
    already presumed this one dead and took the deployment over."""
    with session_scope(target.organization_id) as session:
        now = q.renew_lease(
            session=session, history_id=target.history_id, lease_seconds=target.lease_seconds, details=details
        )
    if now is None:
        raise Conflict("this rollout's lease was taken over by another run (it was presumed dead); stopping")
    return now


def bake(target: Target, since) -> Verdict:
    """Watch the deployment's monitoring points for `bake_seconds`; fail as soon as too many are anomalous."""
    deadline = time.monotonic() + target.config.bake_seconds
    while True:
        with session_scope(target.organization_id) as session:
            count = q.anomalies_since(session=session, deployment_id=target.deployment_id, since=since)
        verdict = bake_verdict(count, target.config.max_anomalies)
        remaining = deadline - time.monotonic()
        if not verdict.ok or remaining <= 0:
            return verdict
        time.sleep(min(target.config.poll_interval_seconds, remaining))


def run_step(target: Target, index: int, traffic: list[dict[str, Any]]) -> StepResult:
    """One step: renew the lease, apply the split and wait for health, then bake. Never raises for a platform
    failure: the result says what failed."""
    started = time.monotonic()
    percent = int(traffic[0]["percent"]) if traffic else 0
    since = renew(target, {"step": index + 1, "percent": percent, "traffic": traffic})
    backend = backend_for(target.config.backend)
    verdict, backend_seconds = drive(backend, target.spec, traffic, target.config)
    if verdict.ok and target.config.bake_seconds > 0:
        baked = bake(target, since)
        verdict = Verdict(baked.ok, f"{verdict.detail}; {baked.detail}")
    return StepResult(
        percent=percent,
        ok=verdict.ok,
        detail=verdict.detail,
        seconds=time.monotonic() - started,
        backend_seconds=backend_seconds,
        traffic=traffic,
    )
