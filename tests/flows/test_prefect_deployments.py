"""prefect.yaml as users run it: deploy to a Prefect server, a worker, and `prefect deployment run --watch`
exiting 0 for a promotion and non-zero for a rejected one (what CI relies on)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_LOGGING_TO_API_ENABLED="true",  # the runs' logs reach the server, as the UI shows them
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


def api_key(env: dict, user: str, *scopes: str) -> str:
    """A fresh API key of `user` in alpha, made as its admin."""
    mlops_bin = str(Path(sys.executable).with_name("mlops"))
    args = ["keys", "create", "--org", "alpha", "--as", "admin@alpha.example", "--user", user, "--name", "ci"]
    for scope in scopes:
        args += ["--scope", scope]
    made = subprocess.run([mlops_bin, *args], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return next(line for line in made.stdout.split() if line.startswith("mlk_"))


def run_promotion(
    env: dict, version: str, stage: str, actor: str, key: str | None = None
) -> subprocess.CompletedProcess:
    job = ["--job-variable", f"env={json.dumps({'MLOPS_API_KEY': key})}"] if key else []
    return prefect(
        env,
        "deployment",
        "run",
        "promote-model/on-demand",
        "--watch",
        "--watch-timeout",
        "150",
        *job,
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


def stages(url: str) -> dict[str, str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT v.version, v.stage FROM model_versions v JOIN models m ON m.id = v.model_id "
                "JOIN organizations o ON o.id = m.organization_id WHERE o.slug = 'alpha'"
            )
        ).all()
    engine.dispose()
    return dict(rows)


@pytest.mark.slow
def test_deployment_run_watch_exit_codes_and_identity(worker_env, tenants_db):
    """A deployment run acts as the API key in its environment, never as the `actor` it claims."""
    url, _, _ = tenants_db
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE data_drift_reports SET is_drift_detected = true"))  # blocks 1.1.0's production
    engine.dispose()
    admin = api_key(worker_env, "admin@alpha.example", "models:promote")
    developer = api_key(worker_env, "developer@alpha.example", "models:promote")

    # four independent runs, submitted at once as CI jobs would (none changes what another one reads)
    with ThreadPoolExecutor(max_workers=4) as runs:
        unauthenticated, claimed, rejected, promoted = runs.map(
            lambda args: run_promotion(worker_env, *args),
            [
                ("1.2.0", "staging", "admin@alpha.example"),
                # a developer's key cannot promote to production, whatever `actor` says
                ("1.1.0", "production", "admin@alpha.example", developer),
                ("1.1.0", "production", "admin@alpha.example", admin),
                ("1.2.0", "staging", "someone@else.example", developer),
            ],
        )
    assert unauthenticated.returncode == 1 and "Failed" in unauthenticated.stdout
    assert claimed.returncode == 1
    assert rejected.returncode == 1 and "Failed" in rejected.stdout
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert stages(url) == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "staging"}

    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        refusal = conn.execute(
            text(
                "SELECT a.api_key_id, a.details FROM audit_logs a JOIN api_keys k ON k.id = a.api_key_id "
                "WHERE a.action LIKE 'model_version.promote%.denied' AND k.key_prefix = :p"
            ),
            {"p": developer[:12]},
        ).one()
        promotion = conn.execute(
            text(
                "SELECT a.details FROM audit_logs a JOIN api_keys k ON k.id = a.api_key_id "
                "WHERE a.action = 'model_version.promote' AND k.key_prefix = :p"
            ),
            {"p": developer[:12]},
        ).scalar_one()
    engine.dispose()
    assert refusal.api_key_id is not None  # the refusal names the key, not the claimed admin
    assert promotion["requested_by"] == {"email": "someone@else.example", "verified": False}


def run_log(env: dict, flow_run_id: str, until: str, timeout: float = 30) -> list[str]:
    """The messages of a flow run's log, as the UI shows them, once one containing `until` arrived (the engine
    ships logs in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            messages = [log.message for log in logs]
            if any(until in m for m in messages) or time.monotonic() > deadline:
                return messages
            time.sleep(1)


@pytest.mark.slow
def test_mlops_promote_submit_runs_on_the_worker_and_exits_like_the_local_command(worker_env, tenants_db):
    """CI with only the Prefect API: the run happens on the worker, its log is streamed, exit codes match."""
    url, _, _ = tenants_db
    mlops_bin = str(Path(sys.executable).with_name("mlops"))
    env = {k: v for k, v in worker_env.items() if k not in ("DATABASE_URL", "MLOPS_MAINTENANCE_DATABASE_URL")}
    model = "alpha/fraud/Fraud Model"

    keys = {
        who: api_key(worker_env, who, "models:promote") for who in ("admin@alpha.example", "developer@alpha.example")
    }

    def submit(version: str, stage: str, actor: str) -> subprocess.CompletedProcess:
        # CI holds the actor's key only: the run on the worker acts as that key
        return subprocess.run(
            [mlops_bin, "promote", model, version, "--to", stage, "--submit", "--timeout", "150"],
            env={**env, "MLOPS_API_KEY": keys[actor]},
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
    # the run's log (streamed from the server) says what ended it in one line: no "unexpected exception" traceback
    # the run's log says what ended it in one line: no "unexpected exception" traceback from Prefect's engine
    flow_run_id = re.search(r"submitted flow run \S+ \(([0-9a-f-]{36})\)", rejected.stdout).group(1)
    messages = run_log(worker_env, flow_run_id, until="ended on an expected outcome")
    assert not [m[:200] for m in messages if "Traceback" in m or "unexpected exception" in m]
    assert any("ended on an expected outcome: GateRejected: promotion of Fraud Model" in m for m in messages), messages
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
