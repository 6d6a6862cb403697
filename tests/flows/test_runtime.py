"""flows.runtime: an expected outcome ends a flow run Failed with one line, and callers still get the error."""

from __future__ import annotations

import pytest
from prefect import flow

from core.errors import GateRejected, PermissionDenied
from flows.runtime import expected_outcomes, run_name


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


@flow(name="run-name-probe", flow_run_name=run_name("probe-{model}-{version}-to-{to_stage}"))
def named(model: str, version: str, to_stage: str | None = None) -> str:
    from prefect.runtime import flow_run

    return flow_run.name


def test_prefect_names_the_run_from_its_parameters(prefect_harness):
    assert (
        named("Credit Card Fraud Model", "1.1.0", "production") == "probe-credit-card-fraud-model-1.1.0-to-production"
    )
    assert named("Fraud", "2.0.0") == "probe-fraud-2.0.0-to"  # an empty parameter drops out


@pytest.mark.parametrize(
    ("flow_name", "params", "expected"),
    [
        (
            "promote_model",
            {"model": "Credit Card Fraud Model", "version": "1.1.0", "to_stage": "production"},
            "promote-credit-card-fraud-model-1.1.0-to-production",
        ),
        ("register_model_version", {"model": "Fraud Model", "version": "1.3.0"}, "register-fraud-model-1.3.0"),
        (
            "detect_drift",
            {"deployment": "acme/fraud-detection/fraud-api-prod", "environment": "production"},
            "detect-drift-acme-fraud-detection-fraud-api-prod-production",
        ),
        ("detect_drift", {"organization": "acme"}, "detect-drift-acme"),
        # a huge or binary parameter still gives a short, plain name (the flow refuses the value itself)
        ("detect_drift", {"organization": "\x00é" + "a" * 100_000}, "detect-drift-" + "a" * 60),
        (
            "rollout_deployment",
            {"deployment": "fraud-api-prod", "environment": "production", "version": "1.1.0"},
            "rollout-fraud-api-prod-production-1.1.0",
        ),
        (
            "rollback_deployment",
            {"deployment": "fraud-api-prod", "environment": "production"},
            "rollback-fraud-api-prod-production",
        ),
    ],
)
def test_every_on_demand_flow_names_its_runs_for_what_they_do(monkeypatch, flow_name, params, expected):
    import prefect.runtime.flow_run as current

    import flows.drift_detection
    import flows.promotion
    import flows.registration
    import flows.rollout

    modules = (flows.promotion, flows.registration, flows.drift_detection, flows.rollout)
    flow_obj = next(getattr(m, flow_name) for m in modules if hasattr(m, flow_name))
    monkeypatch.setattr(current, "parameters", params, raising=False)
    assert flow_obj.flow_run_name() == expected
