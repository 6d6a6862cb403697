"""Lookups of organizations, users, memberships and project roles."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from db.models import Organization, OrganizationMembership, Project, ProjectMember, User


def organization_by_slug(*, session: Session, slug: str) -> Organization:
    """The live organization `slug`; NotFound when absent, soft-deleted or not visible to the session."""
    org = session.scalar(select(Organization).where(Organization.slug == slug, Organization.deleted_at.is_(None)))
    if org is None:
        raise NotFound(f"unknown organization '{slug}'")
    return org


def user_by_email(*, session: Session, email: str) -> User:
    """The live, active user with this e-mail (compared case-insensitively, like the unique index); NotFound
    otherwise."""
    user = session.scalar(select(User).where(func.lower(User.email) == email.lower(), User.deleted_at.is_(None)))
    if user is None or user.is_active is False:
        raise NotFound(f"unknown user '{email}'")
    return user


def membership_role(*, session: Session, organization_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """The user's organization role, or None when not a member (an invitation not yet accepted is not a
    membership)."""
    return session.scalar(
        select(OrganizationMembership.role).where(
            OrganizationMembership.organization_id == organization_id,
            OrganizationMembership.user_id == user_id,
            OrganizationMembership.joined_at.is_not(None),
        )
    )


def project_roles(*, session: Session, organization_id: uuid.UUID, user_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """The user's role in each live project of the organization it is a member of."""
    rows = session.execute(
        select(ProjectMember.project_id, ProjectMember.role)
        .join(Project, Project.id == ProjectMember.project_id)
        .where(
            ProjectMember.user_id == user_id,
            Project.organization_id == organization_id,
            Project.deleted_at.is_(None),
        )
    )
    return {project_id: role for project_id, role in rows}


def active_organizations(*, session: Session) -> list[tuple[uuid.UUID, str, str | None]]:
    """Every live organization as (id, slug, subscription_status), for schedulers (system session)."""
    rows = session.execute(
        select(Organization.id, Organization.slug, Organization.subscription_status)
        .where(Organization.deleted_at.is_(None))
        .order_by(Organization.slug)
    )
    return [(r.id, r.slug, r.subscription_status) for r in rows]
