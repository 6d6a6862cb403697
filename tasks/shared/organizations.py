"""The organizations a scheduled flow works through: one named, or every live one, minus the lapsed.

Shared by every flow that fans out per organization (aggregate-metrics, dispatch-notifications).
"""

from __future__ import annotations

import uuid

from prefect import task

from core.errors import InvalidInput
from db.queries.tenancy import active_organizations
from db.session import system_session
from services.access import subscription_active
from tasks.shared.options import IO_TASK

Organization = tuple[uuid.UUID, str]  # (id, slug): what a per-organization task is mapped over


def organizations_to_run(organization: str | None) -> tuple[list[Organization], list[str]]:
    """Organizations to work through (one, or every active one) and notes about skipped ones."""
    # Cross-organization listing: the scheduler has no tenant yet, so this one read bypasses RLS.
    with system_session() as session:
        orgs = active_organizations(session=session)
    if organization:
        orgs = [o for o in orgs if o[1] == organization]
        if not orgs:
            raise InvalidInput(f"unknown organization '{organization}'")
    chosen, notes = [], []
    for org_id, slug, status in orgs:
        if not subscription_active(status):
            notes.append(f"skipped organization '{slug}': subscription is {status}")
            continue
        chosen.append((org_id, slug))
    return chosen, notes


@task(name="list-organizations", **IO_TASK)
def list_organizations(organization: str | None) -> tuple[list[Organization], list[str]]:
    """`organizations_to_run`, as a task of the flow run."""
    return organizations_to_run(organization)
