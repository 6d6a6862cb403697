"""Declarative base, constraint naming convention and the column helpers every model shares."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, MetaData, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Prefect's convention; set before the first revision so every constraint has a stable, predictable name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


# The spec's full-text expression, parenthesised as PostgreSQL reflects it (`||` is left-associative,
# so this is the same index) so that `alembic check` compares it equal to the migrated one.
SEARCH_VECTOR = text("to_tsvector('english', (name || ' ') || COALESCE(description, ''))")


def uuid_pk() -> Mapped[uuid.UUID]:
    """`id UUID PRIMARY KEY DEFAULT gen_random_uuid()`."""
    return mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))


def created_at() -> Mapped[datetime | None]:
    """`TIMESTAMP WITH TIME ZONE DEFAULT NOW()` (nullable, as the spec writes it)."""
    return mapped_column(server_default=func.now())


def updated_at() -> Mapped[datetime | None]:
    """Like `created_at`; a database trigger keeps it current on every UPDATE."""
    return mapped_column(server_default=func.now())


def deleted_at() -> Mapped[datetime | None]:
    """Soft-delete marker: rows with it set are invisible to flows unless they deal with deletions."""
    return mapped_column(nullable=True)


def jsonb_object(name: str | None = None) -> Mapped[dict[str, Any] | None]:
    """`JSONB DEFAULT '{}'`; `name` when the attribute cannot carry the column's name."""
    if name is None:
        return mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    return mapped_column(name, JSONB, server_default=text("'{}'::jsonb"))


def check_in(column: str, values: Sequence[str]) -> CheckConstraint:
    """The spec's `CHECK (column IN (...))`, named `ck_<table>__<column>` by the convention."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)
