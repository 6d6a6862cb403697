"""The CI examples' shell steps (examples/ci/steps.sh) against a local database, as a pipeline runs them:
an API key made with `mlops keys create`, exit 0 for a passing promotion and 1 for a rejected one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import MLOPS, mlops, scalar

STEPS = Path(__file__).resolve().parents[2] / "examples" / "ci" / "steps.sh"
MODEL = "acme/fraud-detection/Credit Card Fraud Model"


@pytest.fixture(scope="module")
def ci_key(seeded) -> str:
    created = mlops(
        seeded,
        "keys",
        "create",
        "--org",
        "acme",
        "--as",
        "admin@acme.example",
        "--user",
        "dev@acme.example",
        "--name",
        "ci",
        "--scope",
        "models:register",
        "--scope",
        "models:promote:staging",
        "--scope",
        "models:read",
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def pipeline(env: dict, key: str, tmp_path: Path, version: str, metrics: dict, step: str = "all"):
    artifact = tmp_path / f"model-{version}.bin"
    artifact.write_bytes(f"trained weights {version}".encode())
    metrics_file = tmp_path / f"metrics-{version}.json"
    metrics_file.write_text(json.dumps(metrics))
    ci_env = {k: v for k, v in env.items() if k not in ("MLOPS_AS", "MLOPS_ORG")}
    ci_env.update(
        MLOPS=MLOPS,
        MLOPS_API_KEY=key,
        MODEL_REF=MODEL,
        MODEL_VERSION=version,
        ARTIFACT=str(artifact),
        METRICS_FILE=str(metrics_file),
        REASON=f"test pipeline {version}",
    )
    return subprocess.run(["bash", str(STEPS), step], env=ci_env, capture_output=True, text=True, timeout=180)


def version_row(env: dict, version: str, column: str):
    return scalar(
        env,
        f"SELECT {column} FROM model_versions v JOIN models m ON m.id = v.model_id "
        f"WHERE m.name = 'Credit Card Fraud Model' AND v.version = '{version}'",
    )


def test_a_passing_promotion_exits_0_and_writes_the_version_its_transition_and_audit(seeded, ci_key, tmp_path):
    done = pipeline(seeded, ci_key, tmp_path, "3.0.0", {"auc": 0.98, "precision": 0.85, "recall": 0.8})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3.0.0: development → staging" in done.stdout
    assert version_row(seeded, "3.0.0", "stage") == "staging"
    assert version_row(seeded, "3.0.0", "artifact_sha256") is not None
    key_id = scalar(seeded, "SELECT id FROM api_keys WHERE name = 'ci'")
    audited = scalar(
        seeded,
        "SELECT string_agg(action, ',' ORDER BY created_at) FROM audit_logs "
        f"WHERE api_key_id = '{key_id}' AND action LIKE 'model_version.%'",
    )
    assert audited.split(",") == ["model_version.register", "model_version.promote"]
    assert (
        scalar(
            seeded,
            "SELECT count(*) FROM model_stage_transitions t JOIN model_versions v ON "
            "v.id = t.model_version_id WHERE v.version = '3.0.0' AND t.to_stage = 'staging'",
        )
        == 1
    )

    again = pipeline(seeded, ci_key, tmp_path, "3.0.0", {"auc": 0.98, "precision": 0.85, "recall": 0.8})
    assert again.returncode == 0, again.stderr  # a re-run pipeline: same artifact, nothing to do
    assert "already in staging" in again.stdout


def test_a_rejected_promotion_exits_1_and_leaves_the_version_in_development(seeded, ci_key, tmp_path):
    done = pipeline(seeded, ci_key, tmp_path, "3.1.0", {"auc": 0.99})  # precision and recall missing
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rejected by" in done.stderr.splitlines()[-1]
    assert version_row(seeded, "3.1.0", "stage") == "development"
    assert (
        scalar(
            seeded,
            "SELECT count(*) FROM audit_logs WHERE action = 'model_version.promote.rejected' "
            "AND details->>'version' = '3.1.0'",
        )
        == 1
    )


def test_a_developers_key_may_not_promote_to_production_exit_3(seeded, ci_key, tmp_path):
    env = dict(seeded, TARGET_STAGE="production")
    done = pipeline(env, ci_key, tmp_path, "3.0.0", {"auc": 0.98, "precision": 0.85, "recall": 0.8}, step="promote")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "may not model.promote.production" in done.stderr
    assert version_row(seeded, "3.0.0", "stage") == "staging"


def test_missing_settings_exit_non_zero_before_anything_runs(seeded, tmp_path):
    done = subprocess.run(["bash", str(STEPS), "all"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode != 0 and "MLOPS_API_KEY" in done.stderr
