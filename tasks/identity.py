"""Who a flow run acts for: the authentication tasks every on-demand flow calls first."""

from __future__ import annotations

from prefect import task

from services.access import Principal
from services.auth import acting_principal, on_demand_principal
from tasks.common import IO_TASK


@task(name="authenticate", **IO_TASK)
def authenticate(organization: str, actor: str | None) -> Principal:
    """The acting principal: MLOPS_API_KEY from the environment, else the named actor."""
    return acting_principal(organization, actor)


@task(name="authenticate-on-demand", **IO_TASK)
def authenticate_on_demand(organization: str | None, actor: str | None, on_demand: bool) -> Principal | None:
    """For flows that also run on a schedule: the user or API key running it on demand, None for the system
    (a scheduled run: no actor, not on demand, whatever MLOPS_API_KEY holds)."""
    return on_demand_principal(organization, actor, on_demand)
