"""The retention ledger: which months of which category were archived, where, and what they hold."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, check_in, created_at, updated_at, uuid_pk

ARCHIVE_CATEGORIES = ("audit_logs",)


class RetentionArchive(Base):
    """One verified archive object per (organization, category, month) (an addition to the spec).

    Written by the retention flow (`enforce-retention`) after it read the archive back from the artifact store
    and before it deletes the archived rows, so `mlops retention archives` lists archives without scanning the
    store; `held_until` is set by `mlops retention restore` so a month restored for a compliance request is not
    deleted again before the hold ends. The Parquet object and its `.manifest.json` remain the source of truth.
    """

    __tablename__ = "retention_archives"
    __table_args__ = (
        check_in("category", ARCHIVE_CATEGORIES),
        CheckConstraint("period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name="period"),
        UniqueConstraint("organization_id", "category", "period"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(50))
    period: Mapped[str] = mapped_column(String(20))  # YYYY-MM (UTC), checked
    object_key: Mapped[str] = mapped_column(String(1024))
    row_count: Mapped[int] = mapped_column(BigInteger)
    min_time: Mapped[datetime | None] = mapped_column()
    max_time: Mapped[datetime | None] = mapped_column()
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 over the sorted 16-byte ids
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    archived_at: Mapped[datetime] = mapped_column(server_default=func.now())
    held_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime | None] = created_at()
    updated_at: Mapped[datetime | None] = updated_at()
