"""What every Prefect task shares: retry only transient errors, with backoff and jitter, under a timeout."""

from __future__ import annotations

from typing import Any

from mlops.errors import TransientError


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
IO_TASK: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [1, 4, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
    "timeout_seconds": 300,
}
