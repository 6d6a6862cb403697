"""How flows run: one execution path, orchestrated by Prefect or directly (the same code) when no Prefect API is
configured.

Every flow is declared with `control_flow`. Whichever way it is started (a deployment run, `flow(...)` in a
test, `run_flow` from the CLI, `flow.fn(...)`, promotion's hand-off to rollout), its parameters are validated by
`validate_parameters` (bad ones are one `InvalidInput` line), its tasks retry by their own declared settings
(`call`), fan-out is bounded by one setting tied to the database pool (`map_calls`, `MLOPS_TASK_CONCURRENCY`),
and an unexpected exception keeps its traceback in the log. Outside a Prefect run (the `mlops` CLI without
PREFECT_API_URL) tasks run as plain functions by those same rules, so a command does not pay for starting a
temporary Prefect server; artifacts and the run logger degrade the same way.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import time
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import Flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import ParameterBindError, ParameterTypeError
from prefect.settings import PREFECT_API_URL
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.math import clamped_poisson_interval

from core.errors import InvalidInput, MlopsError, PartialFailure
from core.settings import task_concurrency

_log = logging.getLogger("mlops.flows")
F = TypeVar("F", bound=Callable[..., Any])


class _ExpectedOutcomeFilter(logging.Filter):
    """In a deployment run's process, Prefect's engine re-raises the Failed state a flow returned and logs it as
    "exited with unexpected exception" with a full traceback, into the run's log. For an expected outcome (an
    `MlopsError`: the run is Failed with its one-line message already) that line says what ended the run
    instead, without a traceback; anything else is logged as Prefect logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, MlopsError) and "unexpected exception" in record.getMessage():
            record.msg = "%s ended on an expected outcome: %s: %s"
            record.args = (record.getMessage().split(" exited", 1)[0], type(error).__name__, error)
            record.exc_info = record.exc_text = None
        return True


for _name in ("prefect.flow_runs", "prefect.engine"):  # the run's log (the UI's) and the process's stderr
    logging.getLogger(_name).addFilter(_ExpectedOutcomeFilter())


class _ParameterEchoFilter(logging.Filter):
    """Prefect logs a failed parameter validation with every parameter's value before raising; `validate_parameters`
    turns the failure into one `InvalidInput` line naming the parameters (never their values), which is what the
    CLI prints and the run's state says. Its log line is dropped so a command's bad input stays one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Parameter validation failed for flow")


logging.getLogger("prefect.flows").addFilter(_ParameterEchoFilter())


# --- declaring a flow ---------------------------------------------------------------------------------------


class ControlFlow(Flow):
    """A Prefect flow whose parameter validation is `validate_parameters`: a deployment run, a subflow and a
    direct call refuse bad parameters with the same `InvalidInput`."""

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return validate_parameters(self, parameters)


def control_flow(*, name: str, flow_run_name: Callable[[], str]) -> Callable[[Callable[..., Any]], ControlFlow]:
    """Declare a flow of the control plane (every module in flows/ uses this, not `@flow`).

    The flow validates its parameters (`validate_parameters`) and ends an expected outcome in one line
    (`expected_outcomes`) however it is called; its mapped tasks run on a thread pool of
    `MLOPS_TASK_CONCURRENCY` workers inside a Prefect run, as `map_calls` bounds them outside one; prints are not
    logged.
    """

    def decorate(fn: Callable[..., Any]) -> ControlFlow:
        outcomes = expected_outcomes(fn)

        @functools.wraps(outcomes)
        def run(*args: Any, **kwargs: Any) -> Any:
            if not in_flow_run():  # `flow.fn(...)`: validated here; a Prefect run validated them already
                kwargs = validate_parameters(flow_obj, _bind(flow_obj, args, kwargs))
                args = ()
            return outcomes(*args, **kwargs)

        flow_obj = ControlFlow(
            fn=run,
            name=name,
            flow_run_name=flow_run_name,
            task_runner=ThreadPoolTaskRunner(max_workers=task_concurrency()),
            validate_parameters=True,
            log_prints=False,
        )
        return flow_obj

    return decorate


def validate_parameters(flow_obj: Flow, parameters: dict[str, Any]) -> dict[str, Any]:
    """The flow's parameters checked and cast by its signature (types, `Field` bounds, validators), exactly as
    Prefect checks a run's; `InvalidInput` naming each wrong parameter and what it should be, never its value.
    A validator's own domain error (`unknown stage ...`) passes through as it is."""
    try:
        return Flow.validate_parameters(flow_obj, parameters)
    except ParameterTypeError as exc:
        problems = [line.strip(" -") for line in str(exc).splitlines()[1:] if line.strip()]
        raise InvalidInput(f"{flow_obj.name}: invalid parameters: {'; '.join(problems)}") from None
    except ParameterBindError:
        known = ", ".join(inspect.signature(flow_obj.fn).parameters)
        raise InvalidInput(f"{flow_obj.name}: unknown or missing parameters; it takes {known}") from None


def _bind(flow_obj: Flow, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A direct call's arguments as the parameters dict a run receives."""
    try:
        return dict(inspect.signature(flow_obj.fn).bind_partial(*args, **kwargs).arguments)
    except TypeError as exc:
        raise InvalidInput(f"{flow_obj.name}: {exc}") from None


def with_args_section(doc: str | None, hints: dict[str, Any]) -> str | None:
    """`doc` with a Google-style `Args:` section built from the parameters' `Field(description=...)`, unless it
    has one: Prefect shows a deployment's parameter descriptions (UI form, `parameter_openapi_schema`) from the
    docstring only, and drops the ones inside `Annotated`."""
    text = inspect.cleandoc(doc or "")
    if re.search(r"^Args:\s*$", text, flags=re.M):
        return doc
    lines = [
        f"    {name}: {meta.description}"
        for name, hint in hints.items()
        if name != "return"
        for meta in getattr(hint, "__metadata__", ())
        if getattr(meta, "description", None)
    ]
    if not lines:
        return doc
    return f"{text}\n\nArgs:\n" + "\n".join(lines) + "\n"


def expected_outcomes(fn: F) -> F:
    """Applied by `control_flow` to every flow (or under a plain `@flow`): an expected outcome (a gate rejection,
    a refusal, bad input: any `MlopsError`) ends the run Failed with a one-line state message naming it
    (`GateRejected: staging_soak 0.0 h < 24 h`), not an "unexpected exception" traceback in the run's log. The
    exception is the state's data, so a caller of the flow (the CLI, a parent flow) still gets it raised, with
    its exit code. Outside a flow run it just raises. It also gives the docstring an `Args:` section from the
    parameters' descriptions (`with_args_section`).
    """

    # Resolve the (postponed) annotations now, in the flow's module: Prefect builds the parameter model from
    # the wrapper, whose globals are this module's, where `Annotated`, `Field` and the flow's types are unknown.
    fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)
    fn.__doc__ = with_args_section(fn.__doc__, fn.__annotations__)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlopsError as exc:
            if not in_flow_run():
                raise
            from prefect.states import Failed

            return Failed(message=f"{type(exc).__name__}: {exc}", data=exc)

    return wrapper  # type: ignore[return-value]


def run_name(template: str, **when_empty: str) -> Callable[[], str]:
    """A flow's `flow_run_name`: `template` filled with the run's parameters as slugs, so runs read as what they
    do in the UI (`promote-credit-card-fraud-model-1.1.0-to-production`); a parameter left empty takes its
    `when_empty` text (`organization="all-organizations"`) or drops out."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters
        fields = re.findall(r"{(\w+)}", template)
        filled = template.format(**{f: slug(params.get(f)) or when_empty.get(f, "") for f in fields})
        return re.sub(r"-{2,}", "-", filled).strip("-")

    return name


def slug(value: Any) -> str:
    """`Credit Card Fraud Model` -> `credit-card-fraud-model`; `acme/fraud/api` -> `acme-fraud-api`; None -> ''.
    At most 60 characters: a parameter is named before the flow validates it, and a name is for reading."""
    if value is None or value is False:
        return ""
    return re.sub(r"[^a-z0-9.]+", "-", str(value)[:200].lower()).strip("-")[:60].strip("-")


def in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def prefect_api_configured() -> bool:
    return bool(PREFECT_API_URL.value())


# --- running flows and tasks ----------------------------------------------------------------------------------


def run_flow(flow_obj: Flow, *, orchestrate: bool | None = None, **params: Any) -> Any:
    """Run a flow: inside a flow run as its subflow; otherwise through Prefect when asked (or when a Prefect API
    is configured), else directly. Either way its parameters are validated the same way.

    `MLOPS_ORCHESTRATE=always|never` overrides the automatic choice outside a run.
    """
    mode = os.environ.get("MLOPS_ORCHESTRATE") or "auto"
    if mode not in ("auto", "always", "never"):
        raise InvalidInput(f"MLOPS_ORCHESTRATE must be auto, always or never, not '{mode[:40]}'")
    if in_flow_run():
        orchestrate = True
    elif orchestrate is None:
        orchestrate = {"always": True, "never": False}.get(mode, prefect_api_configured())
    return flow_obj(**params) if orchestrate else flow_obj.fn(**params)


def run_subflow(flow_obj: Flow, **params: Any) -> Any:
    """Run another flow as part of the current one: its subflow inside a Prefect run, directly (validated the same
    way) when the current flow runs directly."""
    return run_flow(flow_obj, orchestrate=in_flow_run(), **params)


def call(task_obj: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a task: orchestrated inside a flow run; directly outside one, retried by the task's own settings
    (`retries`, `retry_delay_seconds`, `retry_jitter_factor`, `retry_condition_fn`) as Prefect would."""
    if in_flow_run():
        return task_obj(*args, **kwargs)
    retries = task_obj.retries or 0
    for attempt in range(retries + 1):
        try:
            return task_obj.fn(*args, **kwargs)
        except Exception as exc:
            if attempt == retries or not _retryable(task_obj, exc):
                raise
            delay = _retry_delay(task_obj, attempt)
            _log.warning(
                "%s failed (%s); retry %d/%d in %.1fs", task_obj.name, describe(exc), attempt + 1, retries, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _retryable(task_obj: Any, exc: Exception) -> bool:
    """The task's `retry_condition_fn` on a Failed state holding `exc` (no condition: Prefect retries any)."""
    condition = task_obj.retry_condition_fn
    return True if condition is None else bool(condition(task_obj, None, Failed(data=exc)))


def _retry_delay(task_obj: Any, attempt: int) -> float:
    delays = task_obj.retry_delay_seconds or 0
    delay = float(delays[min(attempt, len(delays) - 1)] if isinstance(delays, list | tuple) else delays)
    jitter = task_obj.retry_jitter_factor
    return clamped_poisson_interval(delay, clamping_factor=jitter) if jitter and delay > 0 else delay


@dataclass(frozen=True)
class ItemFailure:
    """What `map_calls` gives for an item whose task still failed after its retries."""

    error: BaseException

    def __str__(self) -> str:
        return describe(self.error)


def map_calls(task_obj: Any, items: list[Any], *args: Any) -> list[Any]:
    """`task_obj(item, *args)` for every item, at most `MLOPS_TASK_CONCURRENCY` at once: Prefect `map` on the
    flow's task runner inside a run, a thread pool of that size outside one. Results in the order of `items`; an
    item whose task still failed after its retries gives an `ItemFailure`, so one item's failure never hides the
    others' results. A failure that is not an expected outcome (a bug) is logged with its traceback."""
    if not items:
        return []
    if in_flow_run():
        futures = task_obj.map(items, *[unmapped(a) for a in args])
        results = [future.result(raise_on_failure=False) for future in futures]
    else:

        def one(item: Any) -> Any:
            try:
                return call(task_obj, item, *args)
            except Exception as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(task_concurrency(), len(items))) as pool:
            results = list(pool.map(one, items))
    outcomes = []
    for result in results:
        if isinstance(result, BaseException):
            log_unexpected(task_obj.name, result)
            result = ItemFailure(result)
        outcomes.append(result)
    return outcomes


def log_unexpected(what: str, exc: BaseException) -> None:
    """Log a failure that is not an expected outcome (a bug) with its traceback, in the run's log or the
    process's; an `MlopsError` is the caller's to report in its one line."""
    if not isinstance(exc, MlopsError):
        logger().error("%s failed: %s", what, describe(exc), exc_info=exc)


def describe(exc: BaseException) -> str:
    """One line for a failure: an expected outcome's message as it is; anything else `Type: first line`."""
    if isinstance(exc, MlopsError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()


def finish_per_organization(
    results: list[dict[str, Any]],
    notes: list[str],
    *,
    error: type[PartialFailure],
    what: str,
    key: str,
    description: str,
    not_in_table: tuple[str, ...] = ("notes",),
) -> dict[str, Any]:
    """The end of a flow that works per organization (aggregate-metrics, dispatch-notifications): a table artifact
    of `results` (one dict per organization, `status` "failed" for a failed one), then the summary; after every
    organization was attempted, a failed one fails the run (`error`, carrying the summary), so Prefect notifies
    and `--watch` exits non-zero."""
    publish_table(
        [{k: v for k, v in r.items() if k not in not_in_table} for r in results], key=key, description=description
    )
    failed = [r["organization"] for r in results if r["status"] == "failed"]
    summary = {"organizations": results, "notes": notes, "failed": failed}
    if failed:
        raise error(f"{what} failed for {', '.join(failed)}", summary)
    return summary


# --- what a run shows ---------------------------------------------------------------------------------------


def logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run, the `mlops.flows` logger outside."""
    if in_flow_run():
        return get_run_logger()
    return _log


def publish_markdown(markdown: str, *, key: str, description: str) -> None:
    """A markdown artifact of the current flow run (nothing outside a run)."""
    if in_flow_run():
        create_markdown_artifact(markdown=markdown, key=_artifact_key(key), description=description)


def publish_table(rows: list[dict[str, Any]], *, key: str, description: str) -> None:
    """A table artifact of the current flow run (nothing outside a run)."""
    if in_flow_run():
        create_table_artifact(table=rows, key=_artifact_key(key), description=description)


def _artifact_key(key: str) -> str:
    # Prefect artifact keys: lowercase letters, numbers and dashes only
    cleaned = "".join(c if c.isalnum() else "-" for c in key.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100]
