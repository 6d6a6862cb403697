"""The demo's rollout steps: 1.1.0 rolled out in steps by its promotion, a forced promotion of 1.2.0 whose rollout
fails and reverts deployment and registry, and a second run that changes nothing."""

from __future__ import annotations

import pytest

from demo.rollout import run_rollout_demo, start_demo_platform
from demo.run import staging_drift_evidence
from demo.seed import ADMIN, DEVELOPER, MODEL, ORG, PROJECT, seed_demo
from flows.promotion import promote_model
from flows.runtime import run_flow
from tests.factories import Db


@pytest.mark.slow
def test_demo_rolls_out_in_steps_then_reverts_a_failed_forced_promotion(
    fresh_db, tmp_path, monkeypatch, prefect_harness
):
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "artifacts").as_uri())
    seed_demo()
    lines: list[str] = []
    platform = start_demo_platform(lines.append)
    staging_drift_evidence(lines.append)  # the drift gate's evidence, as `make demo` makes it
    common = dict(orchestrate=True, organization=ORG, project=PROJECT, model=MODEL)
    result = run_flow(promote_model, **common, version="1.1.0", to_stage="production", reason="demo", actor=ADMIN)
    assert result["rollout"].startswith("rolled out to 1 deployment(s)")
    run_flow(promote_model, **common, version="1.2.0", to_stage="staging", reason="demo", actor=DEVELOPER)
    run_rollout_demo(lines.append, platform)
    text = "\n".join(lines)
    assert "update    1.1.0   completed  10% -> 50% -> 100%" in text
    assert "exit code 1 from `mlops promote`: promotion of Credit Card Fraud Model 1.2.0 to production reverted" in text
    assert "registry now: 1.1.0 production, 1.2.0 staging" in text
    assert "1.2.0 10% + 1.1.0 90% | 1.1.0 100%" in text
    again: list[str] = []
    run_rollout_demo(again.append, platform)
    assert again[-1].startswith("unchanged:")
    platform.stop()
    db = Db(fresh_db)
    assert db.one("SELECT status FROM deployments WHERE name = 'fraud-api-prod'") == "active"
    assert (
        db.one(
            "SELECT v.version FROM deployments d JOIN model_versions v ON v.id = d.model_version_id "
            "WHERE d.name = 'fraud-api-prod'"
        )
        == "1.1.0"
    )
    db.close()
