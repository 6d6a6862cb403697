"""Notification channels in SQL, for `mlops channels` and `mlops secrets`: live channels by name, all of them,
and all of them locked for re-encryption. A channel's id by name (for rules) is `notifications.channel_by_name`."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from db.models import NotificationChannel


def _live() -> Select[tuple[NotificationChannel]]:
    """Channels that are not removed."""
    return select(NotificationChannel).where(NotificationChannel.deleted_at.is_(None))


def live_channel(*, session: Session, name: str, lock: bool = False) -> NotificationChannel | None:
    """The channel named `name` that is not removed (row-locked with `lock`)."""
    query = _live().where(NotificationChannel.name == name)
    return session.scalar(query.with_for_update() if lock else query)


def live_channels(*, session: Session) -> list[NotificationChannel]:
    """Every channel that is not removed, by name."""
    return list(session.scalars(_live().order_by(NotificationChannel.name)))


def lock_live_channels(*, session: Session) -> list[NotificationChannel]:
    """Every channel that is not removed, row-locked in id order (of every organization the session sees)."""
    return list(session.scalars(_live().order_by(NotificationChannel.id).with_for_update()))


def remove_channel(channel: NotificationChannel) -> None:
    """Soft-delete the channel (`deleted_at` is the transaction's time when the session flushes)."""
    channel.deleted_at = func.now()
