"""Flows `rollout-deployment`, `rollback-deployment`, `terminate-deployment`: progressive, health-checked,
self-reverting changes of a deployment that keep the registry true."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from core.errors import RolloutFailed
from flows.runtime import call, control_flow, log_unexpected, logger, publish_markdown, run_name
from services.access import Principal
from tasks.rollout.plan import Change, ChangeRequest
from tasks.rollout.report import change_markdown
from tasks.rollout.rules import Overrides, StepResult
from tasks.rollout.tasks import (
    begin_task,
    complete_task,
    plan_rollback_task,
    plan_rollout_task,
    plan_terminate_task,
    record_failure_task,
    revert_task,
    step_task,
    stop_serving_task,
)
from tasks.shared.identity import authenticate

Org = Annotated[str, Field(description="Organization slug, e.g. acme")]
Project = Annotated[str | None, Field(description="Project slug, e.g. fraud-detection")]
Name = Annotated[str | None, Field(description="Deployment name, e.g. fraud-api-prod")]
Env = Annotated[str | None, Field(description="development, staging or production")]
Actor = Annotated[str | None, Field(description="E-mail of the acting user when the worker has no MLOPS_API_KEY")]
Reason = Annotated[str | None, Field(description="Why")]


@control_flow(name="rollout-deployment", flow_run_name=run_name("rollout-{deployment}-{environment}-{version}"))
def rollout_deployment(
    organization: Org,
    project: Project = None,
    deployment: Name = None,
    environment: Env = None,
    version: Annotated[str | None, Field(description="The version to roll out, e.g. 1.1.0")] = None,
    steps: Annotated[list[int] | None, Field(description="Traffic percents, e.g. [10, 50, 100]")] = None,
    bake_seconds: Annotated[float | None, Field(description="Seconds to watch each step's monitoring")] = None,
    health_timeout_seconds: Annotated[float | None, Field(description="Seconds a step may take to be healthy")] = None,
    force: Annotated[
        bool, Field(description="Deploy a version whose stage does not fit (admins, with a reason)")
    ] = False,
    reason: Reason = None,
    actor: Actor = None,
    deployment_id: Annotated[str | None, Field(description="The deployment's id (instead of its name)")] = None,
    model_version_id: Annotated[str | None, Field(description="The version's id (instead of its name)")] = None,
    promotion: Annotated[
        dict[str, Any] | None, Field(description="Set by promote-model: the registry to restore")
    ] = None,
) -> dict[str, Any]:
    """Roll a version out in traffic steps: apply each split, wait for health, bake on the deployment's monitoring
    points; on any failure give the previous version all traffic back, record the failure and, when a promotion
    started the rollout, restore the registry. Raises RolloutFailed (the run fails) after reverting."""
    principal = call(authenticate, organization, actor)
    request = ChangeRequest(
        organization=organization,
        project=project,
        deployment=deployment,
        environment=environment,
        version=version,
        deployment_id=deployment_id,
        model_version_id=model_version_id,
        force=force,
        reason=reason,
        promotion=promotion,
        overrides=Overrides(
            steps=tuple(steps) if steps else None,
            bake_seconds=bake_seconds,
            health_timeout_seconds=health_timeout_seconds,
        ),
    )
    change: Change = call(plan_rollout_task, principal, request)
    if change.noop:
        return _nothing(change)
    change = call(begin_task, principal, change)
    results: list[StepResult] = []
    error = None
    if change.config is not None:
        for index, percent in enumerate(change.config.steps):
            try:
                result = call(step_task, change, index, percent)
            except Exception as exc:  # a lost lease or the database: still revert and record
                log_unexpected(f"{change.label}: step {index + 1}", exc)
                result = StepResult(percent=percent, ok=False, detail=f"{type(exc).__name__}: {exc}", seconds=0.0)
            results.append(result)
            logger().info(
                "%s: step %d/%d (%d%%) %s: %s",
                change.label,
                index + 1,
                len(change.config.steps),
                percent,
                "ok" if result.ok else "FAILED",
                result.detail,
            )
            if not result.ok:
                error = f"step {index + 1} ({percent}%) failed: {result.detail}"
                break
    if error is None:
        summary = call(complete_task, principal, change, results)
        _publish(change, summary)
        return summary
    reverted = call(revert_task, change)
    summary = call(record_failure_task, principal, change, results, error, reverted)
    _publish(change, summary)
    raise RolloutFailed(_failure_line(change, summary), summary)


@control_flow(name="rollback-deployment", flow_run_name=run_name("rollback-{deployment}-{environment}-{to_version}"))
def rollback_deployment(
    organization: Org,
    project: Project = None,
    deployment: Name = None,
    environment: Env = None,
    to_version: Annotated[str | None, Field(description="Roll back to this version (default: the previous)")] = None,
    reason: Reason = None,
    actor: Actor = None,
    deployment_id: Annotated[str | None, Field(description="The deployment's id (instead of its name)")] = None,
) -> dict[str, Any]:
    """Give a deployment's traffic back to the previous completed version (or a named one), wait for health,
    and record it; in production the registry follows. Idempotent: a deployment already there is left alone."""
    principal = call(authenticate, organization, actor)
    request = ChangeRequest(
        organization=organization,
        project=project,
        deployment=deployment,
        environment=environment,
        version=to_version,
        deployment_id=deployment_id,
        reason=reason,
    )
    change: Change = call(plan_rollback_task, principal, request)
    return _one_step_change(
        principal,
        change,
        lambda c: call(step_task, c, 0, 100),
        failure=f"rollback to {change.target.model_version} failed",
    )


@control_flow(name="terminate-deployment", flow_run_name=run_name("terminate-{deployment}-{environment}"))
def terminate_deployment(
    organization: Org,
    project: Project = None,
    deployment: Name = None,
    environment: Env = None,
    reason: Reason = None,
    actor: Actor = None,
    deployment_id: Annotated[str | None, Field(description="The deployment's id (instead of its name)")] = None,
) -> dict[str, Any]:
    """Stop a deployment: `terminating`, the platform told to serve nothing, then `inactive`. Idempotent."""
    principal = call(authenticate, organization, actor)
    request = ChangeRequest(
        organization=organization,
        project=project,
        deployment=deployment,
        environment=environment,
        deployment_id=deployment_id,
        reason=reason,
    )
    change: Change = call(plan_terminate_task, principal, request)
    return _one_step_change(principal, change, _stop_serving, failure="terminate failed")


def _stop_serving(change: Change) -> StepResult:
    verdict = call(stop_serving_task, change)
    return StepResult(percent=0, ok=verdict.ok, detail=verdict.detail, seconds=0.0)


def _one_step_change(
    principal: Principal, change: Change, step: Callable[[Change], StepResult], *, failure: str
) -> dict[str, Any]:
    """The runbook of a rollback and a termination: take the deployment, one step on its platform (none for a
    registry-only deployment), then record it completed, or failed with `failure` and the step's detail."""
    if change.noop:
        return _nothing(change)
    change = call(begin_task, principal, change)
    results = [step(change)] if change.config is not None else []
    if all(r.ok for r in results):
        summary = call(complete_task, principal, change, results)
        _publish(change, summary)
        return summary
    error = f"{failure}: {results[-1].detail}"
    summary = call(record_failure_task, principal, change, results, error, None)
    raise RolloutFailed(f"{change.label}: {error}", summary)


def _nothing(change: Change) -> dict[str, Any]:
    logger().info("%s", change.noop)
    return {
        "status": "noop",
        "kind": change.kind,
        "deployment": change.label,
        "version": change.target.model_version,
        "message": change.noop,
    }


def _failure_line(change: Change, summary: dict[str, Any]) -> str:
    line = f"rollout of {change.target.model_version} to {change.label} failed: {summary['error']}"
    if summary.get("rolled_back_to"):
        line += (
            f"; rolled back to {summary['rolled_back_to']}"
            if summary["reverted"]
            else (f"; rollback to {summary['rolled_back_to']} failed too")
        )
    if summary.get("registry_restored"):
        line += f"; registry restored ({', '.join(summary['registry_restored'])})"
    return line


def _publish(change: Change, summary: dict[str, Any]) -> None:
    publish_markdown(
        change_markdown(summary),
        key=f"{change.kind}-{change.label}",
        description=f"{change.kind} of {change.target.model_version} to {change.label}",
    )
