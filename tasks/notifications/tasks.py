"""The Prefect tasks of notification dispatch: thin wrappers of `tasks.notifications.service`, one organization
each."""

from __future__ import annotations

from prefect import task

from tasks.notifications import service
from tasks.notifications.service import DispatchSettings, OrganizationDispatch
from tasks.shared.options import IO_TASK
from tasks.shared.organizations import Organization


@task(name="fan-out-events", **IO_TASK)
def fan_out(org: Organization, settings: DispatchSettings) -> OrganizationDispatch:
    """Turn every undispatched event into deliveries (marking it dispatched in the same transaction)."""
    return service.fan_out(org, settings)


@task(name="send-due-deliveries", **IO_TASK)
def send_due(org: Organization, settings: DispatchSettings) -> OrganizationDispatch:
    """Claim due deliveries batch by batch, send them, record outcomes; dead ones open an alert and an event."""
    return service.send_due(org, settings)
