"""The Prefect task of promotion: a thin wrapper of `tasks.promotion.service`."""

from __future__ import annotations

from prefect import task

from services.access import Principal
from tasks.promotion import service
from tasks.promotion.service import PromotionOutcome, PromotionRequest
from tasks.shared.options import IO_TASK


@task(name="promote-version", **IO_TASK)
def promote_task(principal: Principal, request: PromotionRequest) -> PromotionOutcome:
    return service.promote(principal, request)
