"""Organization membership: adding members within the plan's `max_users`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from core.errors import Conflict, InvalidInput
from db.models import Organization, OrganizationMembership, User
from db.models.tenancy import ORGANIZATION_ROLES
from db.session import system_session
from services.access import Action, Principal
from services.audit import authorize, record_audit


@dataclass(frozen=True)
class Member:
    email: str
    role: str


def add_member(principal: Principal, *, email: str, first_name: str, last_name: str, role: str) -> Member:
    """Add `email` (created if new) to the organization with `role`.

    Organization admins only. The organization row is locked so that concurrent additions cannot exceed
    `max_users`; Conflict when the limit is reached or the user is already a member.
    """
    authorize(principal, Action.MEMBER_MANAGE, what=f"members of {principal.organization_slug}",
              audit_action="organization_membership.create", resource_type="user")  # fmt: skip
    if role not in ORGANIZATION_ROLES:
        raise InvalidInput(f"unknown role '{role}'; expected one of {', '.join(ORGANIZATION_ROLES)}")
    if "@" not in email or len(email) > 255:
        raise InvalidInput(f"'{email}' is not an e-mail address")
    if not first_name.strip() or not last_name.strip():
        raise InvalidInput("a member needs --first-name and --last-name")
    # users are global rows no tenant may create, so membership is managed as the owner role, after the
    # permission check above, with every write scoped to the principal's organization by hand
    with system_session() as session:
        org = session.scalar(select(Organization).where(Organization.id == principal.organization_id).with_for_update())
        members = session.scalar(
            select(func.count()).where(OrganizationMembership.organization_id == principal.organization_id)
        )
        if org.max_users is not None and members >= org.max_users:
            raise Conflict(
                f"organization '{org.slug}' has reached its plan's limit of {org.max_users} users "
                f"({org.subscription_plan} plan)"
            )
        session.execute(
            insert(User)
            .values(email=email, first_name=first_name, last_name=last_name)
            .on_conflict_do_nothing(index_elements=["email"])
        )
        user = session.scalar(select(User).where(User.email == email, User.deleted_at.is_(None)))
        if user is None:
            raise Conflict(f"user '{email}' has been deleted")
        added = session.execute(
            insert(OrganizationMembership)
            .values(organization_id=org.id, user_id=user.id, role=role, invited_by=principal.user_id)
            .on_conflict_do_nothing(index_elements=["organization_id", "user_id"])
            .returning(OrganizationMembership.id)
        ).scalar_one_or_none()
        if added is None:
            raise Conflict(f"{email} is already a member of {org.slug}")
        record_audit(
            session,
            principal=principal,
            action="organization_membership.create",
            resource_type="user",
            resource_id=user.id,
            details={"email": email, "role": role},
        )
    return Member(email=email, role=role)
