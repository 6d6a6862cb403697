"""The Prefect tasks of rollout, rollback and terminate: thin wrappers of `tasks.rollout.plan` and
`tasks.rollout.service`."""

from __future__ import annotations

from typing import Any

from prefect import task

from services.access import Principal
from tasks.rollout import plan, service
from tasks.rollout.plan import Change, ChangeRequest
from tasks.rollout.rules import StepResult, Verdict
from tasks.shared.options import IO_TASK, ONE_ATTEMPT_TASK


@task(name="plan-rollout", **IO_TASK)
def plan_rollout_task(principal: Principal, request: ChangeRequest) -> Change:
    return plan.plan_rollout(principal, request)


@task(name="plan-rollback", **IO_TASK)
def plan_rollback_task(principal: Principal, request: ChangeRequest) -> Change:
    return plan.plan_rollback(principal, request)


@task(name="plan-terminate", **IO_TASK)
def plan_terminate_task(principal: Principal, request: ChangeRequest) -> Change:
    return plan.plan_terminate(principal, request)


@task(name="begin-change", **IO_TASK)
def begin_task(principal: Principal, change: Change) -> Change:
    return service.begin(principal, change)


# The platform-driving tasks are not retried by Prefect: they retry inside their health budget, and a rerun
# would apply a step twice.
@task(name="rollout-step", **ONE_ATTEMPT_TASK)
def step_task(change: Change, index: int, percent: int) -> StepResult:
    return service.step(change, index, percent)


@task(name="revert-platform", **ONE_ATTEMPT_TASK)
def revert_task(change: Change) -> Verdict | None:
    return service.revert(change)


@task(name="stop-serving", **ONE_ATTEMPT_TASK)
def stop_serving_task(change: Change) -> Verdict:
    return service.stop_serving(change)


@task(name="complete-change", **IO_TASK)
def complete_task(principal: Principal, change: Change, steps: list[StepResult]) -> dict[str, Any]:
    return service.complete(principal, change, steps)


@task(name="record-failure", **IO_TASK)
def record_failure_task(
    principal: Principal, change: Change, steps: list[StepResult], error: str, revert: Verdict | None
) -> dict[str, Any]:
    return service.record_failure(principal, change, steps, error, revert)
