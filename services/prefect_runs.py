"""Submit a flow run to its Prefect deployment, stream its log lines, and turn its end into our exit codes.

For CI that can reach the Prefect API but not the database: `mlops promote --submit` runs the promotion on a
worker (which holds the database credentials) and exits like the local command. A flow run that ended on an
expected outcome carries it in its state message as `Type: text` (`flows.runtime.expected_outcomes`), which is
mapped back to the same exception, so the exit code is the same as a local run's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.errors import (
    Conflict,
    GateRejected,
    InfrastructureError,
    InvalidInput,
    MlopsError,
    NotFound,
    PermissionDenied,
)

OUTCOMES: dict[str, type[MlopsError]] = {
    "GateRejected": GateRejected,
    "InvalidInput": InvalidInput,
    "NotFound": NotFound,
    "PermissionDenied": PermissionDenied,
    "Conflict": Conflict,
    "TransientError": InfrastructureError,
    "InfrastructureError": InfrastructureError,
}
# Prefect's engine frames a run refused before it started (its parameters failed `validate_parameters`): the
# outcome follows as `Type: text` like any other.
REFUSED_BEFORE_START = "Validation of flow parameters failed with error: "
POLL_SECONDS = 1.0
LOG_BATCH_SECONDS = 2.5  # Prefect ships run logs to the API in batches every 2 s


def outcome_error(state_type: str, message: str | None) -> MlopsError | None:
    """The error a finished flow run stands for (None: it completed). Pure, for tests."""
    if state_type == "COMPLETED":
        return None
    text = (message or "").strip().removeprefix(REFUSED_BEFORE_START)
    name, sep, rest = text.partition(": ")
    if state_type == "FAILED" and sep and name in OUTCOMES:
        return OUTCOMES[name](rest)
    if state_type == "FAILED":
        return MlopsError(f"flow run failed: {text or 'no message'}")
    return InfrastructureError(f"flow run ended {state_type.lower()}: {text or 'no message'}")


def submit_and_wait(
    deployment: str,
    parameters: dict[str, Any],
    *,
    timeout: float,
    echo: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> uuid.UUID:
    """Run `deployment` (FLOW/NAME) with `parameters`, echo its log lines until it ends, and raise what its end
    stands for. `env` goes to the run as the work pool's `env` job variable (never as a parameter, never
    logged). Raises InfrastructureError when the Prefect API cannot be reached or the run outlives `timeout`.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
    from prefect.client.schemas.sorting import LogSort
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        raise InvalidInput("--submit needs PREFECT_API_URL (the Prefect server the workers poll)")
    try:
        run = run_deployment(deployment, parameters=parameters, timeout=0, job_variables={"env": env} if env else None)
    except Exception as exc:  # the client raises httpx/anyio errors for an unreachable server
        if type(exc).__name__ == "ObjectNotFound":
            raise NotFound(f"no Prefect deployment {deployment!r} on {api} (run `prefect deploy --all`)") from None
        raise InfrastructureError(f"Prefect API {api} unreachable: {type(exc).__name__}") from None
    echo(f"submitted flow run {run.name} ({run.id}) of {deployment}")
    deadline = time.monotonic() + timeout
    seen: datetime | None = None
    draining = False
    try:
        with get_client(sync_client=True) as client:
            while True:
                current = client.read_flow_run(run.id)
                logs = client.read_logs(
                    log_filter=LogFilter(
                        flow_run_id=LogFilterFlowRunId(any_=[run.id]),
                        timestamp=LogFilterTimestamp(after_=seen) if seen else None,
                    ),
                    sort=LogSort.TIMESTAMP_ASC,
                )
                for log in logs:
                    if seen is None or log.timestamp > seen:
                        echo(f"{log.timestamp:%H:%M:%S} {log.message}")
                        seen = log.timestamp
                state = current.state
                if state is not None and state.is_final() and not draining:
                    draining = True  # the run's last lines reach the API a batch interval after it ends
                    time.sleep(LOG_BATCH_SECONDS)
                    continue
                if state is not None and state.is_final():
                    error = outcome_error(state.type.value, state.message)
                    if error is not None:
                        raise error
                    return run.id
                if time.monotonic() > deadline:
                    raise InfrastructureError(
                        f"flow run {run.id} still {state.name if state else 'pending'} after {timeout:.0f} s "
                        "(is a worker polling the work pool?)"
                    )
                time.sleep(POLL_SECONDS)
    except MlopsError:
        raise
    except Exception as exc:
        raise InfrastructureError(f"Prefect API {api} unreachable: {type(exc).__name__}") from None
