"""Flow detect-drift run both ways (orchestrated, and direct as `mlops drift` runs it without a Prefect API): the
same reports, verdicts and alerts, and the same partial failure when one deployment cannot be analysed."""

from __future__ import annotations

import pytest

from core.errors import PartialFailure
from flows.drift_detection import detect_drift
from tests.flows import test_drift_detection as drift

setup = drift.setup  # alpha's production deployment drifts, its staging one does not
WINDOW = dict(organization="alpha", start=drift.START, end=drift.END)


def test_each_deployment_gets_its_report_and_the_drifting_one_an_alert_both_ways(setup, flow_runner):
    db, _, alpha, _ = setup
    summary = flow_runner(detect_drift, **WINDOW)
    assert (summary["deployments"], summary["drift_detected"], summary["failed"]) == (2, 1, 0)
    reports = {r["deployment_id"]: r for r in db.all("SELECT * FROM data_drift_reports")}
    assert reports[alpha["deployment_production"]]["is_drift_detected"]
    assert not reports[alpha["deployment_staging"]]["is_drift_detected"]
    assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'data_drift'") == 1
    assert {o["change"] for o in flow_runner(detect_drift, **WINDOW)["outcomes"]} == {"unchanged"}


def test_a_deployment_that_cannot_be_analysed_fails_the_run_after_the_others_both_ways(setup, flow_runner):
    db, store, alpha, _ = setup
    dep = alpha["deployment_production"]
    config = db.one("SELECT deployment_config FROM deployments WHERE id = :d", d=dep)["monitoring"]["drift"]
    drift.configure(db, dep, **{**config, "reference_uri": store.uri_for("datasets/alpha/gone.parquet")})
    with pytest.raises(PartialFailure, match="1 of 2 deployment") as failed:
        flow_runner(detect_drift, **WINDOW)
    outcomes = {o["deployment"].split("/")[-1]: o["status"] for o in failed.value.summary["outcomes"]}
    assert outcomes == {"fraud-api-production (production)": "failed", "fraud-api-staging (staging)": "reported"}
    assert db.one("SELECT count(*) FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_staging"])
