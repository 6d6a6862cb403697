"""Organization membership: invitations within the plan's `max_users`, accepted by the invited user."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import Conflict, InvalidInput, NotFound
from core.validation import check_email, check_text
from db.models.tenancy import ORGANIZATION_ROLES
from db.queries import members as q
from db.queries.tenancy import organization_by_slug, user_by_email
from db.session import system_session
from services.access import Action, Principal
from services.audit import authorize, record_audit


@dataclass(frozen=True)
class Member:
    email: str
    role: str
    pending: bool = False  # invited, not yet accepted


def add_member(principal: Principal, *, email: str, first_name: str, last_name: str, role: str) -> Member:
    """Add `email` to the organization with `role`.

    Organization admins only. A new e-mail becomes a new user who joins at once (the account exists only
    here). An existing user, who may belong to other organizations, is only INVITED: nothing of theirs is
    usable by this organization (no key in their name, no project role) until they accept with
    `accept_invitation`. The organization row is locked so that concurrent additions cannot exceed
    `max_users` (invitations count). Conflict when the limit is reached or the user is already a member.
    """
    authorize(
        principal,
        Action.MEMBER_MANAGE,
        what=f"members of {principal.organization_slug}",
        audit_action="organization_membership.create",
        resource_type="user",
    )
    if role not in ORGANIZATION_ROLES:
        raise InvalidInput(f"unknown role '{role}'; expected one of {', '.join(ORGANIZATION_ROLES)}")
    check_email(email)
    check_text(first_name, "--first-name", max_length=100)  # users.first_name / last_name are VARCHAR(100)
    check_text(last_name, "--last-name", max_length=100)
    # users and memberships are global/platform rows the application role may not write: the maintenance
    # role does it, after the permission check above, every write scoped to the principal's organization
    with system_session() as session:
        org = q.lock_organization(session=session, organization_id=principal.organization_id)
        members = q.count_members(session=session, organization_id=principal.organization_id)
        if org.max_users is not None and members >= org.max_users:
            raise Conflict(
                f"organization '{org.slug}' has reached its plan's limit of {org.max_users} users "
                f"({org.subscription_plan} plan)"
            )
        existing = q.user_by_email_any_case(session=session, email=email)
        if existing is not None and (existing.deleted_at is not None or existing.is_active is False):
            raise Conflict(f"user '{email}' has been deleted or deactivated")
        if existing is None:
            created = q.create_user(session=session, email=email, first_name=first_name, last_name=last_name)
            if created is None:  # created concurrently by someone else: treat as existing, invite
                existing = q.user_by_email_any_case(session=session, email=email)
        user_id = existing.id if existing is not None else created
        pending = existing is not None
        added = q.add_membership(
            session=session,
            organization_id=org.id,
            user_id=user_id,
            role=role,
            invited_by=principal.user_id,
            joined=not pending,
        )
        if added is None:
            raise Conflict(f"{email} is already a member of {org.slug} (or invited)")
        record_audit(
            session,
            principal=principal,
            action="organization_membership.invite" if pending else "organization_membership.create",
            resource_type="user",
            resource_id=user_id,
            details={"email": email, "role": role, "pending": pending},
        )
    return Member(email=email, role=role, pending=pending)


def accept_invitation(*, organization: str, email: str) -> Member:
    """The invited user `email` joins `organization` (sets `joined_at`); NotFound without a pending invitation.

    Acting as themselves (`--as EMAIL` locally, as for every command): the consent the invitation waits for.
    """
    # the user is not a member yet, so no tenant scope can see the invitation: the maintenance role
    # updates exactly this user's pending row of this organization
    with system_session() as session:
        org = organization_by_slug(session=session, slug=organization)
        user = user_by_email(session=session, email=email)
        role = q.accept_membership(session=session, organization_id=org.id, user_id=user.id)
        if role is None:
            raise NotFound(f"no pending invitation of {email} to organization '{organization}'")
        invitee = Principal(organization_id=org.id, organization_slug=org.slug, user_id=user.id, email=user.email)
        record_audit(
            session,
            principal=invitee,
            action="organization_membership.accept",
            resource_type="user",
            resource_id=user.id,
            details={"email": user.email, "role": role},
        )
    return Member(email=user.email, role=role)
