"""Tenancy: organizations, users and organization memberships (spec section 1)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, check_in, created_at, deleted_at, jsonb_object, updated_at, uuid_pk

SUBSCRIPTION_PLANS = ("starter", "professional", "enterprise")
SUBSCRIPTION_STATUSES = ("active", "inactive", "suspended")
ORGANIZATION_ROLES = ("admin", "developer", "viewer")


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (
        UniqueConstraint("slug"),
        check_in("subscription_plan", SUBSCRIPTION_PLANS),
        check_in("subscription_status", SUBSCRIPTION_STATUSES),
        Index("idx_organizations_slug", "slug", postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(100))
    billing_email: Mapped[str] = mapped_column(String(255))
    subscription_plan: Mapped[str | None] = mapped_column(String(50), server_default="starter")
    subscription_status: Mapped[str | None] = mapped_column(String(50), server_default="active")
    max_users: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    max_models: Mapped[int | None] = mapped_column(Integer, server_default=text("2"))
    settings: Mapped[dict[str, Any] | None] = jsonb_object()
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email"),
        Index("idx_users_email", "email", postgresql_where=text("deleted_at IS NULL")),
        # revision 0012: e-mails are unique case-insensitively (`Ada@x` and `ada@x` are one person), so one
        # person cannot hold two accounts that organizations would treat as strangers
        Index("uq_users__lower_email", func.lower(text("email")), unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # NULL for SSO users
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    is_verified: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    last_login_at: Mapped[datetime | None] = mapped_column()
    settings: Mapped[dict[str, Any] | None] = jsonb_object()
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class OrganizationMembership(Base):
    __tablename__ = "organization_memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        check_in("role", ORGANIZATION_ROLES),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(50), server_default="viewer")
    invited_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    joined_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
