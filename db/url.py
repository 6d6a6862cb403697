"""Which database: `DATABASE_URL`, or the embedded server under MLOPS_HOME."""

from __future__ import annotations

import os

from core.settings import mlops_home, normalize_database_url


def database_url() -> str:
    """`DATABASE_URL` when set, otherwise the embedded server under MLOPS_HOME (started if needed)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return normalize_database_url(url)
    from db.embedded import embedded_database_url

    return embedded_database_url(mlops_home())
