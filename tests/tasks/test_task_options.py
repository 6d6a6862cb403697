"""Every Prefect task of the domains declares its options in one place (tasks.shared.options): no task result is
ever cached, so a retried or re-run flow always takes its locks and reads its rows again."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_RESULTS_PERSIST_BY_DEFAULT, temporary_settings

import tasks
from tasks.shared.options import IO_TASK, ONE_ATTEMPT_TASK


def every_task() -> list[Task]:
    found = {}
    for module in pkgutil.walk_packages(tasks.__path__, "tasks."):
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if isinstance(value, Task):
                found[value.name] = value
    return sorted(found.values(), key=lambda t: t.name)


TASKS = every_task()


def test_prefect_tasks_live_only_in_a_domains_tasks_module_or_tasks_shared():
    modules = {t.fn.__module__ for t in TASKS}
    assert modules and all(m.endswith(".tasks") or m.startswith("tasks.shared.") for m in modules), modules
    assert len(TASKS) >= 25


@pytest.mark.parametrize("task_obj", TASKS, ids=lambda t: t.name)
def test_no_task_result_is_cached(task_obj):
    assert task_obj.cache_policy is NO_CACHE


def test_a_task_called_twice_in_one_run_runs_twice_even_with_results_persisted(prefect_harness):
    calls = []

    @task(name="take-the-lock", **IO_TASK)
    def take_the_lock(resource: str) -> int:
        calls.append(resource)
        return len(calls)

    @flow(name="twice")
    def twice() -> list[int]:
        return [take_the_lock("deployment-1"), take_the_lock("deployment-1")]

    # with persistence on, Prefect's default policy (source, run id, inputs) would hand the second call the first
    # call's result without running it
    with temporary_settings({PREFECT_RESULTS_PERSIST_BY_DEFAULT: True}):
        assert twice() == [1, 2]
    assert calls == ["deployment-1", "deployment-1"]


def test_one_attempt_tasks_are_never_retried_nor_cached():
    assert ONE_ATTEMPT_TASK == {"retries": 0, "cache_policy": NO_CACHE}
