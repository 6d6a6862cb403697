"""Every error a user may see is picklable with what it carries: Prefect persists a failed run's exception and a
process pool sends it between processes, so an error that cannot round-trip turns an expected outcome into a
crash (`pickle.loads(pickle.dumps(DispatchFailed("x", {})))` raised before)."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import pytest

import core
import db
import flows
import mlops
import services
import tasks
from core.errors import GateRejected, MlopsError, PartialFailure


def every_error_class() -> list[type[MlopsError]]:
    """MlopsError and every subclass defined anywhere in the project (every module imported first)."""
    for package in (core, db, services, tasks, flows, mlops):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found, todo = [], [MlopsError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


ERRORS = every_error_class()


def test_the_project_defines_the_errors_the_issue_names():
    names = {c.__name__ for c in ERRORS}
    assert {"DispatchFailed", "AggregationFailed", "RolloutFailed", "PartialFailure", "TransientError"} <= names
    assert len(ERRORS) >= 15


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_round_trips_with_its_message_attributes_and_exit_code(cls):
    error = cls("it went wrong: 'x'")
    error.status_class = "4xx"  # an attribute set after construction (services.senders does) travels too
    if isinstance(error, PartialFailure):
        error.summary = {"organizations": [{"organization": "alpha", "status": "failed"}], "failed": ["alpha"]}
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == "it went wrong: 'x'"
    assert back.__dict__ == error.__dict__
    assert back.exit_code == error.exit_code


def test_summaries_and_gate_results_survive_the_round_trip():
    from core.errors import AggregationFailed, DispatchFailed, RolloutFailed

    for cls in (DispatchFailed, AggregationFailed, RolloutFailed):
        back = pickle.loads(pickle.dumps(cls("failed for alpha", {"failed": ["alpha"]})))
        assert isinstance(back, cls) and back.summary == {"failed": ["alpha"]}
    assert issubclass(DispatchFailed, PartialFailure) and issubclass(AggregationFailed, PartialFailure)
    rejected = GateRejected(
        "staging_soak", ["staging_soak: 2 h < 24 h"], [{"gate": "staging_soak"}], from_stage="staging"
    )
    back = pickle.loads(pickle.dumps(rejected))
    assert (back.failures, back.gates, back.from_stage) == (rejected.failures, rejected.gates, "staging")
