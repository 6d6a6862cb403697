"""The one place database errors become domain errors, applied where sessions end (`db.session`, `db.migrate`,
retention's run lock): a flow run, a deployment run and the CLI then report the same error the same way.

- a constraint the application relies on (a unique index that settles a race) -> its error and message
  (`CONSTRAINTS`);
- a lock not granted within `lock_timeout` (55P03) -> `Conflict`: someone else is changing the same rows;
- connection loss, shutdown, serialization failure, deadlock, too many connections, a pool with no connection
  free in time -> `TransientError`, which the tasks retry;
- a value the schema cannot hold (SQLSTATE class 22, "data exception") -> `InvalidInput`, naming the kind of
  problem, never the value;
- logging in as a role the migrations have not created -> one line saying to run `mlops db upgrade`.

Anything else (a violated constraint nobody expects, a syntax error) is a bug: it stays what it is, with its
traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.errors import Conflict, InvalidInput, MlopsError, TransientError

# Constraint name -> (error, message). `{what}` is what the transaction was changing (`session_scope(what=...)`).
CONSTRAINTS: dict[str, tuple[type[MlopsError], str]] = {
    # promotion: the partial unique index keeps one production version per model
    "uq_model_versions__one_production": (Conflict, "another version of {what} reached production concurrently; retry"),
    # rollout: one unfinished change per deployment (its lock row)
    "uq_deployment_history__one_unfinished": (Conflict, "{what} is already being changed by another run"),
}
LOCK_NOT_AVAILABLE = "55P03"
# SQLSTATEs worth retrying: connection exceptions (class 08), shutdown, serialization failure, deadlock, too many
# connections.
TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "53300")
DATA_EXCEPTION_CLASS = "22"
_WHAT = "the same rows"


def translate(exc: BaseException, *, what: str | None = None) -> MlopsError | None:
    """The domain error `exc` means, or None when it is not one we expect (a bug: let it propagate as it is).

    `what` names what the transaction was changing, for the messages (`model 'Fraud'`, a deployment's label).
    """
    if isinstance(exc, MlopsError):
        return exc
    subject = what or _WHAT
    if isinstance(exc, PoolTimeout):
        return TransientError("database busy: no pooled connection came free in time, retry")
    if not isinstance(exc, SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    if _role_missing(orig):
        return MlopsError(
            "the database roles do not exist yet: run `mlops db upgrade` first "
            "(or have a DBA run db/roles.sql on managed PostgreSQL)"
        )
    sqlstate = getattr(orig, "sqlstate", None) or ""
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
    if constraint in CONSTRAINTS:
        error, message = CONSTRAINTS[constraint]
        return error(message.format(what=subject))
    if sqlstate == LOCK_NOT_AVAILABLE:
        return Conflict(f"another change to {subject} is in progress; retry")
    if (
        sqlstate.startswith(TRANSIENT_SQLSTATES)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        or (not sqlstate and isinstance(exc, OperationalError))
    ):
        return TransientError(f"database unavailable or busy, retry: {type(orig or exc).__name__}")
    if sqlstate.startswith(DATA_EXCEPTION_CLASS):
        # the kind of problem only: PostgreSQL's message quotes the offending value, which may be anything
        return InvalidInput(f"the database refused a value: {_words(type(orig).__name__)} (SQLSTATE {sqlstate})")
    return None


@contextmanager
def translated(*, what: str | None = None) -> Iterator[None]:
    """Run the block, raising the domain error a database error means (`translate`); others propagate."""
    try:
        yield
    except SQLAlchemyError as exc:
        error = translate(exc, what=what)
        if error is None or error is exc:
            raise
        raise error from exc


def _role_missing(orig: object) -> bool:
    """A login as a role the migrations have not created yet (a fresh server before `mlops db upgrade`)."""
    message = str(orig or "")
    return "role" in message and "does not exist" in message and ("mlops_login" in message or "mlops_maint" in message)


def _words(name: str) -> str:
    """`NumericValueOutOfRange` -> `numeric value out of range`."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower() or "data exception"
