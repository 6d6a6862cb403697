"""Flow promote-model run both ways (orchestrated by Prefect, and direct as the CLI runs it without a Prefect
API): the same decision, the same rows, the same failures. Its hand-off to rollout (a subflow, or a direct call)
is run both ways in test_rollout_both_ways.py, beside the serving platform it drives."""

from __future__ import annotations

import pytest

from core.errors import GateRejected
from flows.promotion import promote_model
from tests.flows import test_promotion as promotion

db = promotion.db  # a tenant whose 1.1.0 is in staging with a soak and a clean drift report
PROMOTE = dict(organization="alpha", project="fraud", model="Fraud Model", version="1.1.0", actor="admin@alpha.example")


def test_a_promotion_to_staging_writes_the_same_rows_both_ways(db, flow_runner):
    db.run("UPDATE model_versions SET stage = 'development' WHERE version = '1.1.0'")
    before = db.writes()
    result = flow_runner(promote_model, **PROMOTE, to_stage="staging", reason="ready")
    assert (result["status"], result["from_stage"], result["to_stage"]) == ("promoted", "development", "staging")
    assert result["rollout"] == "not applicable" and all(g["passed"] for g in result["gates"])
    assert db.stages()["1.1.0"] == "staging"
    transitions, audits, events = before
    assert db.writes() == (transitions + 1, audits + 1, events + 1)


def test_a_rejection_fails_the_same_way_both_ways_and_writes_no_change(db, flow_runner):
    db.run("UPDATE data_drift_reports SET is_drift_detected = true")
    before = db.writes()
    with pytest.raises(GateRejected, match="drift") as rejected:
        flow_runner(promote_model, **PROMOTE, to_stage="production")
    assert rejected.value.from_stage == "staging" and rejected.value.failures
    assert db.writes() == before and db.stages()["1.1.0"] == "staging"
