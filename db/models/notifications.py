"""Notification channels and rules (spec section 8)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, func, text
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
    # non-secret settings in clear, secret ones encrypted by the application (see services.secrets)
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


EVENT_SEVERITIES = ("info", "low", "medium", "high", "critical")


class NotificationEvent(Base):
    """Transactional outbox (an addition to the spec).

    Every flow writes a user-visible consequence here with `emit_event`, in the same transaction as the
    change that caused it, so an event exists if and only if the change committed. Notification dispatch
    is the only consumer and the only sender. `dedup_key` makes a re-run of the same change emit nothing
    new; `dispatched_at` marks the events dispatch has fanned out.
    """

    __tablename__ = "notification_events"
    __table_args__ = (
        check_in("trigger_type", TRIGGER_TYPES),
        check_in("severity", EVENT_SEVERITIES),
        UniqueConstraint("organization_id", "dedup_key"),
        Index("ix_notification_events__pending", "created_at", postgresql_where=text("dispatched_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    trigger_type: Mapped[str] = mapped_column(String(50))
    event_type: Mapped[str] = mapped_column(String(100))  # model_version.promoted, drift.detected, ...
    severity: Mapped[str] = mapped_column(String(20), server_default="info")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column()
