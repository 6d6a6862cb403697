"""The settings every Prefect task of the domains declares: which failures it retries, how often, and no caching.

`flows.runtime` runs a task by these same settings outside a Prefect run, so they are the one place a task's
retry behaviour is written.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

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
# No cache: every such task has side effects or reads what changes (a retried flow run must take its lock and
# read the rows again, never be handed a cached result).
IO_TASK: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [1, 4, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
    "cache_policy": NO_CACHE,
}

# Tasks never repeated whole, and never cached: a rollout step (it has its own deadline and backoff inside;
# repeating it would apply a traffic split twice), one organization's retention run (each category retries
# and reports its own batches).
ONE_ATTEMPT_TASK: dict[str, Any] = {"retries": 0, "cache_policy": NO_CACHE}
