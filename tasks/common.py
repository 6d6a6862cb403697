"""What every Prefect task shares: retry only transient errors, with backoff and jitter, under a timeout."""

from __future__ import annotations

from typing import Any

from core.errors import TransientError


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry a failed run only when it failed with a TransientError."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


# Keyword arguments for @task on anything that touches the database, the artifact store or a peer.
# Time limits live where they can interrupt the work (Prefect cannot stop a task in a worker thread): the
# database's statement_timeout and lock_timeout, boto3's connect/read timeouts, httpx and SMTP timeouts.
IO_TASK: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [1, 4, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}
