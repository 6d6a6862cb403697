"""Where things live: MLOPS_HOME, the database URL and the artifact store URI, from the environment."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".mlops"


def mlops_home() -> Path:
    """`MLOPS_HOME` (default `.mlops/` in the working directory), created on first use."""
    home = Path(os.environ.get("MLOPS_HOME") or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def normalize_database_url(url: str) -> str:
    """Accept libpq-style `postgresql://` URLs too; the project drives PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
