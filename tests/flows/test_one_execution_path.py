"""flows.runtime: one way to run a flow. In and out of a Prefect run, parameters are validated the same way, tasks
retry by their own declared settings, fan-out is bounded by MLOPS_TASK_CONCURRENCY (which sizes the database
pool; a full pool is a TransientError the task retries), and a bug keeps its traceback in the log.

Each test here failed before this layout: `.fn` and `run_flow` skipped validation (and retention re-checked its
bounds by hand), `call()` retried TransientError only, `map_calls` handed exceptions back for the flows to keep as
`str(exc)`, and aggregate-metrics and dispatch-notifications set no task runner (Prefect's default is unbounded).
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack

import pytest
from prefect import task
from sqlalchemy import text

from core.errors import InvalidInput, TransientError
from core.settings import task_concurrency
from db.session import dispose_engines, pool_size, session_scope
from flows.runtime import ItemFailure, call, control_flow, map_calls, run_flow, run_name
from services.prefect_runs import outcome_error
from tasks.shared.options import IO_TASK, retry_transient


def flows_by_name():
    from flows.drift_detection import detect_drift
    from flows.metric_aggregation import aggregate_metrics
    from flows.notification_dispatch import dispatch_notifications
    from flows.promotion import promote_model
    from flows.registration import register_model_version
    from flows.retention import enforce_retention
    from flows.rollout import rollback_deployment, rollout_deployment, terminate_deployment

    return {
        f.name: f
        for f in (
            detect_drift,
            aggregate_metrics,
            dispatch_notifications,
            promote_model,
            register_model_version,
            enforce_retention,
            rollout_deployment,
            rollback_deployment,
            terminate_deployment,
        )
    }


# (flow, bad parameters, the one line both paths give); nothing runs, so no database is needed
BAD_PARAMETERS = [
    ("enforce-retention", {"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
    ("enforce-retention", {"batch_size": 100_001}, "batch_size: Input should be less than or equal to 100000"),
    (
        "promote-model",
        {"organization": "alpha", "project": "p", "model": "m", "version": "1.0.0", "to_stage": "heaven"},
        "unknown stage 'heaven'; expected one of development, staging, production, archived",
    ),
    # promotion's hand-off runs rollout like this outside a Prefect run (it used `.fn`, unvalidated)
    ("rollout-deployment", {"organization": "alpha", "bake_seconds": "a while"}, "bake_seconds: Input should be"),
    ("aggregate-metrics", {"since": "yesterday-ish"}, "since: Input should be a valid datetime"),
    ("dispatch-notifications", {"settings": {"batch_size": "many"}}, "settings.batch_size: Input should be"),
    ("detect-drift", {"start": "soon"}, "start: Input should be a valid datetime"),
    ("register-model-version", {"organization": "alpha"}, "project: Field required"),
    ("terminate-deployment", {"organization": "alpha", "actr": "x"}, "unexpected keyword argument 'actr'"),
]


class TestParametersAreValidatedOneWay:
    @pytest.mark.parametrize(("name", "params", "message"), BAD_PARAMETERS, ids=lambda v: str(v)[:40])
    def test_a_direct_run_refuses_bad_parameters_with_one_line(self, name, params, message):
        flow_obj = flows_by_name()[name]
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")) as direct:
            run_flow(flow_obj, orchestrate=False, **params)
        with pytest.raises(InvalidInput) as fn_call:
            flow_obj.fn(**params)  # `.fn` is no bypass either
        assert str(fn_call.value) == str(direct.value)
        assert "\n" not in str(direct.value)

    @pytest.mark.parametrize(("name", "params", "message"), BAD_PARAMETERS[:4], ids=lambda v: str(v)[:40])
    def test_an_orchestrated_run_refuses_them_with_the_same_line(self, name, params, message, prefect_harness):
        flow_obj = flows_by_name()[name]
        with pytest.raises(InvalidInput) as direct:
            run_flow(flow_obj, orchestrate=False, **params)
        with pytest.raises(InvalidInput) as orchestrated:
            run_flow(flow_obj, orchestrate=True, **params)
        assert str(orchestrated.value) == str(direct.value)
        state = flow_obj(**params, return_state=True)
        # Prefect frames a run refused before it starts; `--submit` reads the outcome after that frame
        assert state.is_failed() and state.message.endswith(f"InvalidInput: {direct.value}")
        refused = outcome_error("FAILED", state.message)
        assert isinstance(refused, InvalidInput) and str(refused) == str(direct.value) and refused.exit_code == 2


class TestTasksRetryByTheirOwnSettings:
    def test_outside_a_run_a_task_retries_what_its_condition_accepts(self):
        attempts = []

        def on_value_error(task_obj, task_run, state) -> bool:
            try:
                state.result()
            except ValueError:
                return True
            except BaseException:
                return False
            return False

        @task(retries=2, retry_delay_seconds=0, retry_condition_fn=on_value_error)
        def flaky() -> str:
            attempts.append(1)
            if len(attempts) < 3:
                raise ValueError("not yet")
            return "done"

        assert call(flaky) == "done" and len(attempts) == 3

    def test_a_task_without_a_condition_retries_any_failure_as_prefect_does(self):
        attempts = []

        @task(retries=1, retry_delay_seconds=0)
        def once_broken() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise KeyError("first")
            return "second"

        assert call(once_broken) == "second" and len(attempts) == 2

    def test_an_io_task_does_not_retry_a_bug(self):
        attempts = []

        @task(**{**IO_TASK, "retry_delay_seconds": 0})
        def buggy() -> None:
            attempts.append(1)
            raise RuntimeError("a bug")

        with pytest.raises(RuntimeError):
            call(buggy)
        assert len(attempts) == 1

    def test_a_full_pool_is_transient_and_the_retry_gets_a_connection(self, tenants_db, monkeypatch):
        _, alpha, _ = tenants_db
        monkeypatch.setenv("MLOPS_TASK_CONCURRENCY", "1")
        monkeypatch.setenv("MLOPS_POOL_TIMEOUT", "1")
        dispose_engines()
        held = ExitStack()
        failures = []

        def release_then_retry(task_obj, task_run, state) -> bool:
            try:
                state.result()
            except TransientError as exc:
                failures.append(str(exc))
            held.close()  # the other transactions end before the retry
            return retry_transient(task_obj, task_run, state)

        @task(**{**IO_TASK, "retry_delay_seconds": 0, "retry_condition_fn": release_then_retry})
        def count_models() -> int:
            with session_scope(alpha["org"]) as s:
                return s.scalar(text("SELECT count(*) FROM models"))

        try:
            for _ in range(2 * pool_size()):
                held.enter_context(session_scope(alpha["org"])).execute(text("SELECT 1"))
            assert call(count_models) == 1
            assert failures == ["database busy: no pooled connection came free in time, retry"]
        finally:
            held.close()
            dispose_engines()


def _probe_flow():
    """A flow that maps a task over 1..6 whose item 3 hits a bug, declared like every flow of the project."""

    @task(name="probe-item", **IO_TASK)
    def probe_item(item: int) -> int:
        if item == 3:
            raise RuntimeError(f"bug on item {item}")
        return item * 10

    @control_flow(name="map-probe", flow_run_name=run_name("map-probe"))
    def map_probe() -> list[str]:
        return [str(r) for r in map_calls(probe_item, [1, 2, 3, 4, 5, 6])]

    return map_probe


class TestFanOut:
    def test_one_items_bug_is_a_failure_in_its_place_and_its_traceback_is_logged(self, flow_runner, caplog):
        probe = _probe_flow()
        loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "mlops.flows")]
        for lg in loggers:
            lg.addHandler(caplog.handler)
        try:
            with caplog.at_level(logging.ERROR):
                results = flow_runner(probe)
        finally:
            for lg in loggers:
                lg.removeHandler(caplog.handler)
        assert results == ["10", "20", "RuntimeError: bug on item 3", "40", "50", "60"]
        logged = [r for r in caplog.records if r.exc_info and "bug on item 3" in r.getMessage()]
        assert logged, f"no traceback logged ({flow_runner})"
        assert "probe_item" in caplog.text and 'raise RuntimeError(f"bug on item {item}")' in caplog.text

    def test_every_flow_that_fans_out_is_bounded_by_the_one_setting(self):
        bounded = {name: f.task_runner._max_workers for name, f in flows_by_name().items()}
        assert bounded == dict.fromkeys(bounded, task_concurrency())
        assert pool_size() == task_concurrency() + 1

    def test_no_more_tasks_run_at_once_than_the_setting_allows(self, flow_runner, monkeypatch):
        monkeypatch.setenv("MLOPS_TASK_CONCURRENCY", "2")
        lock = threading.Condition()
        running, most = [0], [0]

        @task(name="overlap", **IO_TASK)
        def overlap(item: int) -> int:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
                lock.notify_all()
                # wait for a third task to join; a bounded pool never lets one in, so this times out
                lock.wait_for(lambda: running[0] > 2, timeout=0.3)
                running[0] -= 1
            return item

        @control_flow(name="overlap-probe", flow_run_name=run_name("overlap-probe"))
        def overlap_probe() -> list:
            return map_calls(overlap, list(range(6)))

        assert flow_runner(overlap_probe) == list(range(6))
        assert most[0] == 2


def test_an_item_failure_reads_as_the_error_it_holds():
    assert str(ItemFailure(TransientError("artifact store unreachable"))) == "artifact store unreachable"
    assert str(ItemFailure(KeyError("deployment"))) == "KeyError: 'deployment'"
