"""Domain errors; the CLI maps each to an exit code and one line on stderr.

Every one is picklable with what it carries (Prefect persists a failed run's exception, and a process pool
sends it between processes): a subclass's constructor takes the message first and the rest with defaults, and
whatever it keeps as attributes travels in `__dict__` (`BaseException.__reduce__`).
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base of every error a user may see. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __reduce__(self):
        # (class, (message,), attributes): a subclass whose constructor takes more than the message still
        # rebuilds from the message alone, then gets its attributes back
        return (type(self), (str(self),), dict(self.__dict__))


class InvalidInput(MlopsError):
    """The request itself is wrong: malformed version, illegal transition, bad parameter."""

    exit_code = 2


class NotFound(MlopsError):
    """A named thing (organization, model, version, object) does not exist or is not visible."""

    exit_code = 2


class PermissionDenied(MlopsError):
    """The principal may not do this."""

    exit_code = 3


class Conflict(MlopsError):
    """The request clashes with the current state (a concurrent change, a different existing artifact)."""

    exit_code = 1


class GateRejected(MlopsError):
    """A promotion gate failed; `failures` lists every failed gate."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        failures: list[str] | None = None,
        gates: list[dict] | None = None,
        *,
        from_stage: str | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.gates = gates or []  # every gate's result, passed or not
        self.from_stage = from_stage  # the stage the version stays in


class PartialFailure(MlopsError):
    """Some items of a batch failed after the others were done (a drift run where one deployment could not be
    analysed): the run ends Failed, so Prefect notifies and `--watch` exits non-zero. `summary` is what the
    run would have returned."""

    exit_code = 1

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


class AggregationFailed(PartialFailure):
    """Some organization could not be aggregated (`aggregate-metrics`); the others were."""


class DispatchFailed(PartialFailure):
    """Some organization could not be dispatched (`dispatch-notifications`); the others were."""


class RolloutFailed(MlopsError):
    """A rollout, rollback or termination failed (and a rollout was reverted); `summary` says what happened."""

    exit_code = 1

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


class InfrastructureError(MlopsError):
    """What we depend on is not there: the Prefect API or the database unreachable, a crashed flow run."""

    exit_code = 4


class TransientError(InfrastructureError):
    """A retryable failure: database or peer unreachable, serialization conflict. Tasks retry only these; what is
    still failing after the retries exits 4 like any infrastructure failure."""


def is_transient(exc: BaseException) -> bool:
    """Prefect `retry_condition_fn` helper: retry only transient errors."""
    return isinstance(exc, TransientError)
