"""The Prefect tasks of the registry: thin wrappers of `tasks.registry.service`."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import task

from services.access import Principal
from tasks.registry import service
from tasks.registry.service import RegistrationOutcome, RegistrationRequest
from tasks.shared.options import IO_TASK


@task(name="register-version", **IO_TASK)
def register_task(principal: Principal, request: RegistrationRequest) -> RegistrationOutcome:
    return service.register(principal, request)


@task(name="revert-promotion", **IO_TASK)
def revert_promotion_task(
    principal: Principal, model_version_id: uuid.UUID, promotion: dict[str, Any], why: str
) -> list[str]:
    return service.revert_promotion(principal, model_version_id, promotion, why)
