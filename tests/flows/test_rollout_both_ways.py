"""Flows rollout-deployment, rollback-deployment and terminate-deployment run both ways (orchestrated, and direct
as the CLI runs them): the same traffic steps on the platform, the same history, registry and failures; and
promote-model's hand-off to rollout, a subflow when orchestrated and a direct call when not."""

from __future__ import annotations

import pytest

from core.errors import RolloutFailed
from flows.promotion import promote_model
from flows.rollout import rollback_deployment, rollout_deployment, terminate_deployment
from tests.flows import test_rollout as rollout_tests

stub = rollout_tests.stub
db = rollout_tests.db  # alpha's production deployment serves 1.0.0 through the stub; 1.1.0 is in production
PROD, ADMIN = rollout_tests.PROD, rollout_tests.ADMIN


def test_a_healthy_rollout_steps_through_the_platform_both_ways(db, stub, flow_runner):
    summary = flow_runner(rollout_deployment, **PROD, version="1.1.0", actor=ADMIN)
    assert summary["status"] == "completed" and [s["percent"] for s in summary["steps"]] == [10, 50, 100]
    assert stub.split_puts() == [{"1.1.0": 10, "1.0.0": 90}, {"1.1.0": 50, "1.0.0": 50}, {"1.1.0": 100}]
    assert db.history() == [("deploy", "1.0.0", "completed"), ("update", "1.1.0", "completed")]
    assert db.events() == [("deployment", "deployment.rolled_out", "info")]


def test_an_unhealthy_rollout_is_reverted_and_fails_both_ways(db, stub, flow_runner):
    stub.unready = {"1.1.0"}
    with pytest.raises(RolloutFailed, match=r"step 1 \(10%\) failed: health not reached"):
        flow_runner(rollout_deployment, **PROD, version="1.1.0", actor=ADMIN)
    rollout_tests.TestFailedRollout().assert_reverted(db, stub, "not ready: 1.1.0")


def test_rollback_then_terminate_both_ways(db, stub, flow_runner):
    flow_runner(rollout_deployment, **PROD, version="1.1.0", steps=[100], actor=ADMIN)
    back = flow_runner(rollback_deployment, **PROD, reason="latency", actor=ADMIN)
    assert back["status"] == "completed" and db.deployment()["version"] == "1.0.0"
    assert db.stages() == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "development"}
    stopped = flow_runner(terminate_deployment, **PROD, reason="retired", actor=ADMIN)
    assert stopped["status"] == "completed" and db.deployment()["status"] == "inactive"
    assert flow_runner(terminate_deployment, **PROD, reason="retired", actor=ADMIN)["status"] == "noop"


def test_a_promotions_rollout_hand_off_fails_and_restores_the_registry_both_ways(db, stub, flow_runner):
    rollout_tests.TestPromotion().reset(db)
    stub.unready = {"1.1.0"}
    with pytest.raises(RolloutFailed, match="promotion of Fraud Model 1.1.0 to production reverted: rollout of 1.1.0"):
        flow_runner(
            promote_model,
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="1.1.0",
            to_stage="production",
            reason="release",
            actor=ADMIN,
        )
    assert db.stages() == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "development"}
    assert db.deployment()["version"] == "1.0.0" and db.deployment()["status"] == "active"
    assert db.audit() == ["model_version.promote", "deployment.rollout.failed", "model_version.restore"]
    assert stub.split_puts() == [{"1.1.0": 10, "1.0.0": 90}, {"1.0.0": 100}]
