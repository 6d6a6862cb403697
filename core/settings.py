"""Settings from the environment: MLOPS_HOME, the statement timeout, how many tasks a flow run runs at once
(and so the database pool), database URLs."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import InvalidInput
from core.validation import check_duration

DEFAULT_HOME = ".mlops"
DEFAULT_TASK_CONCURRENCY = 4
MAX_TASK_CONCURRENCY = 64
DEFAULT_POOL_TIMEOUT_SECONDS = 30


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


def task_concurrency() -> int:
    """`MLOPS_TASK_CONCURRENCY` (default 4, 1 to 64): how many tasks one flow run runs at once (organizations in
    aggregate-metrics and dispatch-notifications, deployments in detect-drift), orchestrated by Prefect or not.
    It is the one bound on fan-out, and the database pool is sized from it (`db.session.pool_size`)."""
    return _whole_number("MLOPS_TASK_CONCURRENCY", DEFAULT_TASK_CONCURRENCY, 1, MAX_TASK_CONCURRENCY)


def pool_timeout_seconds() -> int:
    """`MLOPS_POOL_TIMEOUT` (default 30, 1 to 600): seconds a transaction waits for a pooled database connection
    before it fails with a TransientError (retried by the task)."""
    return _whole_number("MLOPS_POOL_TIMEOUT", DEFAULT_POOL_TIMEOUT_SECONDS, 1, 600)


def _whole_number(name: str, default: int, low: int, high: int) -> int:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}, got '{raw[:40]}'")
    return int(raw)


def normalize_database_url(url: str) -> str:
    """Accept libpq-style `postgresql://` URLs too; the project drives PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
