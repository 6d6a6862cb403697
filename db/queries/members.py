"""Organization membership in SQL: the plan's seat count, users by e-mail, invitations and their acceptance.

Run by the maintenance role (`system_session`): users are global rows the application role may not write.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Organization, OrganizationMembership, User


def lock_organization(*, session: Session, organization_id: uuid.UUID) -> Organization:
    """The organization, row-locked: concurrent invitations count its seats one at a time."""
    return session.scalar(select(Organization).where(Organization.id == organization_id).with_for_update())


def count_members(*, session: Session, organization_id: uuid.UUID) -> int:
    return session.scalar(select(func.count()).where(OrganizationMembership.organization_id == organization_id))


def user_by_email_any_case(*, session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def create_user(*, session: Session, email: str, first_name: str, last_name: str) -> uuid.UUID | None:
    """The new user's id; None when one with this e-mail was created concurrently."""
    return session.execute(
        insert(User)
        .values(email=email, first_name=first_name, last_name=last_name)
        .on_conflict_do_nothing()
        .returning(User.id)
    ).scalar_one_or_none()


def add_membership(
    *,
    session: Session,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    invited_by: uuid.UUID | None,
    joined: bool,
) -> uuid.UUID | None:
    """The new membership's id (joined now, or pending until accepted); None when one exists already."""
    return session.execute(
        insert(OrganizationMembership)
        .values(
            organization_id=organization_id,
            user_id=user_id,
            role=role,
            invited_by=invited_by,
            joined_at=func.now() if joined else None,
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "user_id"])
        .returning(OrganizationMembership.id)
    ).scalar_one_or_none()


def accept_membership(*, session: Session, organization_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """Join the user's pending membership now; its role, or None without a pending invitation."""
    return session.execute(
        update(OrganizationMembership)
        .where(
            OrganizationMembership.organization_id == organization_id,
            OrganizationMembership.user_id == user_id,
            OrganizationMembership.joined_at.is_(None),
        )
        .values(joined_at=func.now())
        .returning(OrganizationMembership.role)
    ).scalar_one_or_none()
