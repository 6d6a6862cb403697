"""Who is acting: resolve a principal from an API key (`MLOPS_API_KEY`) or a named user (`--as EMAIL`)."""

from __future__ import annotations

import dataclasses
import os

from core.errors import InvalidInput, PermissionDenied
from db.queries.tenancy import membership_role, organization_by_slug, project_roles, user_by_email
from db.session import system_session
from services import apikeys
from services.access import Principal, subscription_active, system_principal

API_KEY_ENV = "MLOPS_API_KEY"


def api_key_from_env() -> str | None:
    """The API key the process acts with: the one place `MLOPS_API_KEY` is read (CI, workers, the CLI)."""
    return os.environ.get(API_KEY_ENV) or None


def acting_principal(
    organization: str | None, as_email: str | None, *, on_demand: bool = True, key_only: bool = False
) -> Principal:
    """The acting principal: `MLOPS_API_KEY` when set, else `as_email` in `organization`.

    With `key_only` (a Prefect deployment run: anyone who can reach the Prefect API can start one and type any
    e-mail), only the key counts: without one nothing is touched, and `as_email` is at most recorded in the
    audit details as an unverified "requested by".
    """
    key = api_key_from_env()
    if key_only:
        if not key:
            raise PermissionDenied(
                "a deployment run authenticates with an API key: set MLOPS_API_KEY in the run's environment "
                "(`mlops promote --submit` passes the caller's; in the UI, the run's job variable env); "
                "the `actor` parameter alone proves nothing"
            )
        principal = resolve_principal(organization=organization, api_key=key, on_demand=on_demand)
        if as_email and as_email.lower() != (principal.email or "").lower():
            principal = dataclasses.replace(principal, requested_by=as_email)
        return principal
    return resolve_principal(organization=organization, as_email=as_email, api_key=key, on_demand=on_demand)


def on_demand_principal(
    organization: str | None, as_email: str | None, on_demand: bool, *, key_only: bool = False
) -> Principal | None:
    """Who runs a flow that also runs on a schedule: the caller when run on demand (`on_demand`, as the CLI
    says, or a named `as_email`): `MLOPS_API_KEY` or that user; None for a scheduled run: the system.

    A scheduled run never uses `MLOPS_API_KEY`: a worker's environment may carry one organization's key (for
    on-demand runs through it), and the schedule works for every organization, as the scheduler.
    """
    if not as_email and not on_demand:
        return None
    return acting_principal(organization, as_email, key_only=key_only)


def resolve_principal(
    *, organization: str | None, as_email: str | None = None, api_key: str | None = None, on_demand: bool = True
) -> Principal:
    """The acting principal in `organization` (a slug).

    An API key wins over `as_email`; a key of another organization than the one named is refused. With
    `on_demand`, an organization whose subscription is not active is refused (scheduled flows skip instead).
    Raises InvalidInput (no identity), NotFound (unknown organization or user), PermissionDenied.
    """
    if api_key:
        principal = apikeys.authenticate(api_key)
        if organization and organization != principal.organization_slug:
            raise PermissionDenied(
                f"API key belongs to organization '{principal.organization_slug}', not '{organization}'"
            )
        _require_active(principal.organization_slug, on_demand)
        return principal
    if not organization:
        raise InvalidInput("name the organization (--org SLUG or ORG/PROJECT/...)")
    if not as_email:
        raise InvalidInput("no identity: set MLOPS_API_KEY, or pass --as EMAIL (MLOPS_AS) for local use")
    with system_session() as session:
        org = organization_by_slug(session=session, slug=organization)
        user = user_by_email(session=session, email=as_email)
        role = membership_role(session=session, organization_id=org.id, user_id=user.id)
        if role is None:
            raise PermissionDenied(f"{as_email} is not a member of organization '{organization}'")
        roles = project_roles(session=session, organization_id=org.id, user_id=user.id)
        status = org.subscription_status
    if on_demand and not subscription_active(status):
        raise PermissionDenied(f"organization '{organization}' is {status}; on-demand operations are refused")
    return Principal(
        organization_id=org.id,
        organization_slug=org.slug,
        user_id=user.id,
        email=user.email,
        org_role=role,
        project_roles=roles,
    )


def resolve_system(organization: str) -> Principal:
    """The system principal of `organization`, for scheduled work."""
    with system_session() as session:
        org = organization_by_slug(session=session, slug=organization)
        return system_principal(org.id, org.slug)


def _require_active(slug: str, on_demand: bool) -> None:
    if not on_demand:
        return
    with system_session() as session:
        status = organization_by_slug(session=session, slug=slug).subscription_status
    if not subscription_active(status):
        raise PermissionDenied(f"organization '{slug}' is {status}; on-demand operations are refused")
