"""Who a flow run acts for: the authentication tasks every on-demand flow calls first.

A run started from a Prefect deployment (the UI, `prefect deployment run`, `mlops promote --submit`, a schedule)
authenticates with the API key in its environment only: the Prefect API is open to whoever reaches it, so a
claimed `actor` e-mail is recorded as "requested by" and never trusted. Runs of the flow code on the user's own
machine (the CLI without `--submit`, tests) may name a user with `--as`.
"""

from __future__ import annotations

from prefect import task

from services.access import Principal
from services.auth import acting_principal, on_demand_principal
from tasks.shared.options import IO_TASK


def deployment_run() -> bool:
    """Whether this is a run of a Prefect deployment (its parameters came through the Prefect API)."""
    from prefect.runtime import deployment

    return deployment.id is not None


@task(name="authenticate", **IO_TASK)
def authenticate(organization: str, actor: str | None) -> Principal:
    """The acting principal: MLOPS_API_KEY from the environment, else (not in a deployment run) the named actor."""
    return acting_principal(organization, actor, key_only=deployment_run())


@task(name="authenticate-on-demand", **IO_TASK)
def authenticate_on_demand(organization: str | None, actor: str | None, on_demand: bool) -> Principal | None:
    """For flows that also run on a schedule: the user or API key running it on demand, None for the system
    (a scheduled run: no actor, not on demand, whatever MLOPS_API_KEY holds)."""
    return on_demand_principal(organization, actor, on_demand, key_only=deployment_run())
