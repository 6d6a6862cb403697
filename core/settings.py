"""Where things live: MLOPS_HOME, the database URL and the artifact store URI, from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InvalidInput
from core.validation import check_duration

DEFAULT_HOME = ".mlops"


def mlops_home() -> Path:
    """`MLOPS_HOME` (default `.mlops/` in the working directory), created on first use; InvalidInput when it
    names a file or cannot be created."""
    home = Path(os.environ.get("MLOPS_HOME") or DEFAULT_HOME).expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise InvalidInput(f"MLOPS_HOME {home} is a file, not a directory")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"MLOPS_HOME {home} cannot be created: {exc.strerror}") from None
    return home


def statement_timeout() -> str:
    """`MLOPS_STATEMENT_TIMEOUT` (default 120s), checked: a malformed value is one line, not a database error
    in the middle of a command."""
    return check_duration(os.environ.get("MLOPS_STATEMENT_TIMEOUT") or "120s", "MLOPS_STATEMENT_TIMEOUT")


def normalize_database_url(url: str) -> str:
    """Accept libpq-style `postgresql://` URLs too; the project drives PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
