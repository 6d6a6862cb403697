"""How flows run: orchestrated by Prefect, or directly (same code) when no Prefect API is configured.

Flows call their tasks through `call()`: inside a Prefect flow run a task is orchestrated (retries, states,
UI); outside one (the `mlops` CLI without PREFECT_API_URL) it runs as a plain function with the same
transient-error retries, so a command does not pay for starting a temporary Prefect server. Artifacts and
the run logger degrade the same way.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
import re
import time
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prefect import get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL

from core.errors import InvalidInput, MlopsError, TransientError

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
    """Under `@flow`, on every flow: an expected outcome (a gate rejection, a refusal, bad input: any
    `MlopsError`) ends the run Failed with a one-line state message naming it (`GateRejected: staging_soak 0.0
    h < 24 h`), not an "unexpected exception" traceback in the run's log. The exception is the state's data, so
    a caller of the flow (the CLI, a parent flow) still gets it raised, with its exit code. Outside a flow run
    it just raises. It also gives the docstring an `Args:` section from the parameters' descriptions
    (`with_args_section`).
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


def run_name(template: str) -> Callable[[], str]:
    """A flow's `flow_run_name`: `template` filled with the run's parameters as slugs, so runs read as what they
    do in the UI (`promote-credit-card-fraud-model-1.1.0-to-production`); a parameter left empty drops out."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters
        fields = re.findall(r"{(\w+)}", template)
        filled = template.format(**{f: slug(params.get(f)) for f in fields})
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


def run_flow(flow_obj: Any, *, orchestrate: bool | None = None, **params: Any) -> Any:
    """Run a flow: through Prefect when asked (or when a Prefect API is configured), else its plain function.

    `MLOPS_ORCHESTRATE=always|never` overrides the automatic choice.
    """
    mode = os.environ.get("MLOPS_ORCHESTRATE") or "auto"
    if mode not in ("auto", "always", "never"):
        raise InvalidInput(f"MLOPS_ORCHESTRATE must be auto, always or never, not '{mode[:40]}'")
    if orchestrate is None:
        orchestrate = {"always": True, "never": False}.get(mode, prefect_api_configured())
    return flow_obj(**params) if orchestrate else flow_obj.fn(**params)


def call(task_obj: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a task: orchestrated inside a flow run; directly, retrying TransientError, outside one."""
    if in_flow_run():
        return task_obj(*args, **kwargs)
    retries = getattr(task_obj, "retries", 0) or 0
    delays = getattr(task_obj, "retry_delay_seconds", None) or [1]
    for attempt in range(retries + 1):
        try:
            return task_obj.fn(*args, **kwargs)
        except TransientError as exc:
            if attempt == retries:
                raise
            delay = delays[min(attempt, len(delays) - 1)] if isinstance(delays, list) else float(delays)
            _log.warning("%s failed (%s); retry %d/%d in %.1fs", task_obj.name, exc, attempt + 1, retries, delay)
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")


def map_calls(task_obj: Any, items: list[Any], *args: Any, max_workers: int = 4) -> list[Any]:
    """`task_obj(item, *args)` for every item, concurrently: Prefect `map` inside a flow run (bounded by the flow's
    task runner), a bounded thread pool outside one. Results in the order of `items`; an item whose task still
    failed after its retries gives its exception, so one item's failure never hides the others' results."""
    if not items:
        return []
    if in_flow_run():
        futures = task_obj.map(items, *[unmapped(a) for a in args])
        return [future.result(raise_on_failure=False) for future in futures]

    def one(item: Any) -> Any:
        try:
            return call(task_obj, item, *args)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items)))) as pool:
        return list(pool.map(one, items))


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
