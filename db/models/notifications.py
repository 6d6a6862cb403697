"""Notification channels and rules (spec section 8)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.vocabulary import ChannelType, DeliveryStatus, Severity, TriggerType, values
from db.base import Base, check_in, created_at, deleted_at, jsonb_object, updated_at, uuid_pk

CHANNEL_TYPES = values(ChannelType)
TRIGGER_TYPES = values(TriggerType)


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


EVENT_SEVERITIES = values(Severity)


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


DELIVERY_STATUSES = values(DeliveryStatus)


class NotificationDelivery(Base):
    """One event's delivery to one channel (an addition to the spec, for notification dispatch).

    Dispatch fans each outbox event out into one row per matched channel (unique per event and channel, so two
    rules to one channel deliver once), claims due rows with `FOR UPDATE SKIP LOCKED` until `claim_expires_at`
    (a crashed run's claim expires and is retried), and records the outcome under its `claim_token`. `status`:
    `pending` (never tried), `sending` (claimed), `delivered`, `failed` (will retry at `next_attempt_at`),
    `dead` (permanent refusal or attempts exhausted). `last_error` never holds a secret. `group_key` (the
    deployment) groups one deployment's events within `group_wait` into one message per channel. Retention
    deletes final rows 90 days after `updated_at`.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        check_in("status", DELIVERY_STATUSES),
        UniqueConstraint("event_id", "channel_id"),
        Index(
            "ix_notification_deliveries__due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending', 'failed')"),
        ),
        Index(
            "ix_notification_deliveries__group",
            "channel_id",
            "group_key",
            postgresql_where=text("status = 'pending' AND group_key IS NOT NULL"),
        ),
        Index("ix_notification_deliveries__organization_id_updated_at", "organization_id", "updated_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notification_events.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    rule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("notification_rules.id", ondelete="SET NULL"))
    group_key: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    claim_expires_at: Mapped[datetime | None] = mapped_column()
    claim_token: Mapped[uuid.UUID | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(500))
    response_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class NotificationAlertState(Base):
    """Per (alert, channel): when dispatch last notified the alert there, and whether its resolution went out.

    An addition for the alert life cycle: an open alert is re-notified no more often than its rule's
    `repeat_interval`, and a resolved one sends one resolution message. The delivery log cannot answer either
    once retention has deleted old deliveries, and one small row per (alert, channel) is a cheap lookup.
    """

    __tablename__ = "notification_alert_state"
    __table_args__ = (UniqueConstraint("alert_id", "channel_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    last_notified_at: Mapped[datetime | None] = mapped_column()
    resolution_notified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
