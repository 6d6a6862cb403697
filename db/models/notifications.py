"""Notification channels and rules (spec section 8)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, check_in, created_at, deleted_at, jsonb_object, updated_at, uuid_pk

CHANNEL_TYPES = ("email", "slack", "teams", "webhook")
TRIGGER_TYPES = ("alert", "deployment", "model_update", "experiment_complete")


class NotificationChannel(Base):
    __tablename__ = "notification_channels"
    __table_args__ = (check_in("type", CHANNEL_TYPES),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(50))
    # non-secret settings in clear, secret ones encrypted by the application (see mlops.secrets)
    configuration: Mapped[dict[str, Any]] = mapped_column(JSONB)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
    deleted_at: Mapped[datetime | None] = deleted_at()


class NotificationRule(Base):
    __tablename__ = "notification_rules"
    __table_args__ = (check_in("trigger_type", TRIGGER_TYPES),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # NULL = organization-wide
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # NULL = project-wide
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    trigger_type: Mapped[str] = mapped_column(String(50))
    conditions: Mapped[dict[str, Any] | None] = jsonb_object()
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
