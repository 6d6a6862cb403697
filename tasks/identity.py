"""Who a flow run acts for: the one authentication task every on-demand flow calls first."""

from __future__ import annotations

import os

from prefect import task

from services.access import Principal
from services.auth import resolve_principal
from tasks.common import IO_TASK


@task(name="authenticate", **IO_TASK)
def authenticate(organization: str, actor: str | None) -> Principal:
    """The acting principal: MLOPS_API_KEY from the environment, else the named actor."""
    return resolve_principal(organization=organization, as_email=actor, api_key=os.environ.get("MLOPS_API_KEY"))
