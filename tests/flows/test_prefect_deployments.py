"""prefect.yaml as users run it: deploy to a Prefect server, a worker, and `prefect deployment run --watch`
exiting 0 for a promotion and non-zero for a rejected one (what CI relies on)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from tests.fixtures.cli import one_line_error
from tests.fixtures.database import role_env

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def prefect(env: dict, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def worker_env(tenants_db, prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    url, _, _ = tenants_db
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_API_KEY"}
    env.update(
        PREFECT_API_URL=PREFECT_API_URL.value(),
        **role_env(url),
        MLOPS_HOME=str(tmp_path / "home"),
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    created = prefect(env, "work-pool", "create", "mlops", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stderr
    checkout = prefect(env, "variable", "set", "mlops_checkout", str(ROOT), "--overwrite")
    assert checkout.returncode == 0, checkout.stderr
    deployed = prefect(env, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker = subprocess.Popen(
        # started elsewhere: the pull step finds the checkout through the variable, not the worker's directory
        [PREFECT, "worker", "start", "--pool", "mlops"],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield env
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)


def run_promotion(env: dict, version: str, stage: str, actor: str) -> subprocess.CompletedProcess:
    return prefect(
        env,
        "deployment",
        "run",
        "promote-model/on-demand",
        "--watch",
        "--watch-timeout",
        "150",
        "--param",
        "organization=alpha",
        "--param",
        "project=fraud",
        "--param",
        "model=Fraud Model",
        "--param",
        f"version={version}",
        "--param",
        f"to_stage={stage}",
        "--param",
        f"actor={actor}",
    )


@pytest.mark.slow
def test_deployment_run_watch_exit_codes(worker_env, tenants_db):
    url, _, _ = tenants_db
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE data_drift_reports SET is_drift_detected = true"))  # blocks 1.1.0's production
    rejected = run_promotion(worker_env, "1.1.0", "production", "admin@alpha.example")
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "Failed" in rejected.stdout
    promoted = run_promotion(worker_env, "1.2.0", "staging", "developer@alpha.example")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    with engine.connect() as conn:
        stages = dict(
            conn.execute(
                text(
                    "SELECT version, stage FROM model_versions v JOIN models m ON m.id = v.model_id "
                    "JOIN organizations o ON o.id = m.organization_id WHERE o.slug = 'alpha'"
                )
            ).all()
        )
    engine.dispose()
    assert stages == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "staging"}


@pytest.mark.slow
def test_mlops_promote_submit_runs_on_the_worker_and_exits_like_the_local_command(worker_env, tenants_db):
    """CI with only the Prefect API: the run happens on the worker, its log is streamed, exit codes match."""
    url, _, _ = tenants_db
    mlops_bin = str(Path(sys.executable).with_name("mlops"))
    env = {k: v for k, v in worker_env.items() if k not in ("DATABASE_URL", "MLOPS_MAINTENANCE_DATABASE_URL")}
    model = "alpha/fraud/Fraud Model"

    def submit(version: str, stage: str, actor: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [mlops_bin, "promote", model, version, "--to", stage, "--submit", "--timeout", "150", "--as", actor],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=200,
        )

    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE data_drift_reports SET is_drift_detected = true"))  # blocks 1.1.0's production
    rejected = submit("1.1.0", "production", "admin@alpha.example")
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "submitted flow run" in rejected.stdout and "rejected by 1 gate(s)" in one_line_error(rejected)
    promoted = submit("1.2.0", "staging", "developer@alpha.example")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "completed" in promoted.stdout
    with engine.connect() as conn:
        stage = conn.execute(
            text(
                "SELECT v.stage FROM model_versions v JOIN models m ON m.id = v.model_id JOIN organizations o "
                "ON o.id = m.organization_id WHERE o.slug = 'alpha' AND v.version = '1.2.0'"
            )
        ).scalar_one()
    engine.dispose()
    assert stage == "staging"


@pytest.mark.slow
def test_every_deployed_parameter_has_a_description_and_a_type(worker_env):
    """What the Prefect UI renders as the run form: every parameter of every deployment described and typed."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
    assert len(deployments) >= 9
    for deployment in deployments:
        properties = deployment.parameter_openapi_schema["properties"]
        undescribed = [name for name, p in properties.items() if not p.get("description")]
        untyped = [name for name, p in properties.items() if not ({"type", "anyOf", "allOf", "$ref"} & set(p))]
        assert not undescribed and not untyped, (deployment.name, undescribed, untyped)
