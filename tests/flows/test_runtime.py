"""flows.runtime: an expected outcome ends a flow run Failed with one line, and callers still get the error."""

from __future__ import annotations

import pytest
from prefect import flow

from core.errors import GateRejected, PermissionDenied
from flows.runtime import expected_outcomes


@flow(name="expected-outcome-probe")
@expected_outcomes
def probe(outcome: str) -> str:
    """A flow that ends the way it is told.

    Args:
        outcome: ok, gate, denied or crash.
    """
    if outcome == "gate":
        raise GateRejected("staging_soak 0.0 h < 24 h")
    if outcome == "denied":
        raise PermissionDenied("dev@acme.example may not model.promote.production")
    if outcome == "crash":
        raise RuntimeError("a bug")
    return "done"


def test_expected_outcomes_fail_the_run_with_one_line_and_reraise_for_callers(prefect_harness):
    assert probe("ok") == "done"
    state = probe("gate", return_state=True)
    assert state.is_failed() and state.message == "GateRejected: staging_soak 0.0 h < 24 h"
    with pytest.raises(GateRejected, match="staging_soak"):
        probe("gate")
    with pytest.raises(PermissionDenied) as refused:
        probe("denied")
    assert refused.value.exit_code == 3


def test_a_bug_still_fails_as_an_unexpected_exception(prefect_harness):
    state = probe("crash", return_state=True)
    assert state.is_failed() and "a bug" in (state.message or "")
    with pytest.raises(RuntimeError):
        probe("crash")


def test_outside_a_flow_run_the_plain_function_raises():
    with pytest.raises(GateRejected):
        probe.fn("gate")
