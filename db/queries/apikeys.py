"""API keys in SQL: the lookup by hash at authentication, listing and the row a revocation locks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import ApiKey, Organization, User


def database_now(*, session: Session) -> datetime:
    """The transaction's time, so expiry is judged by one clock whatever the client's."""
    return session.scalar(select(func.now()))


def key_by_hash(*, session: Session, digest: str) -> tuple[ApiKey, str] | None:
    """(key, organization slug) of the key with this hash in a live organization."""
    row = session.execute(
        select(ApiKey, Organization.slug)
        .join(Organization, Organization.id == ApiKey.organization_id)
        .where(ApiKey.key_hash == digest, Organization.deleted_at.is_(None))
    ).one_or_none()
    return (row.ApiKey, row.slug) if row else None


def key_user(*, session: Session, user_id: uuid.UUID) -> Any:
    """The key's user: email, is_active, deleted_at (None when the user is gone)."""
    return session.execute(select(User.email, User.is_active, User.deleted_at).where(User.id == user_id)).one_or_none()


def touch_key(*, session: Session, key_id: uuid.UUID, at: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


def live_keys(*, session: Session, user_id: uuid.UUID | None) -> list[tuple[ApiKey, str]]:
    """(key, user e-mail) of every live key visible to the session, oldest first; only `user_id`'s when given."""
    query = (
        select(ApiKey, User.email)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.deleted_at.is_(None))
        .order_by(ApiKey.created_at)
    )
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return [(key, email) for key, email in session.execute(query)]


def key_by_prefix_for_update(*, session: Session, key_prefix: str) -> tuple[ApiKey, str] | None:
    """(key, user e-mail) of the live key with this display prefix, row-locked for a change."""
    row = session.execute(
        select(ApiKey, User.email)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_prefix == key_prefix, ApiKey.deleted_at.is_(None))
        .with_for_update(of=ApiKey)
    ).one_or_none()
    return (row[0], row[1]) if row else None
