"""`mlops serve`: prefect.yaml's deployments served from one process, runs triggered through the Prefect API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core.errors import InvalidInput
from mlops.cli.serve import PREFECT_YAML, plan
from tests.fixtures.cli import scalar
from tests.fixtures.database import role_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_plan_reads_every_deployment_of_prefect_yaml():
    config = yaml.safe_load(PREFECT_YAML.read_text())
    planned = {f"{p.flow_name}/{p.name}": p for p in plan(config)}
    assert len(planned) == len(config["deployments"])
    assert planned["aggregate-metrics/every-5-minutes"].crons == (("*/5 * * * *", "UTC"),)
    assert planned["aggregate-metrics/every-5-minutes"].concurrency == (1, "CANCEL_NEW")
    assert planned["promote-model/on-demand"].crons == ()
    assert all(tz == "UTC" for p in planned.values() for _, tz in p.crons)


@pytest.mark.parametrize("config", [{}, {"deployments": [{"name": "x", "entrypoint": "no-colon"}]}])
def test_plan_refuses_a_malformed_file(config):
    with pytest.raises(InvalidInput):
        plan(config)


@pytest.mark.slow
def test_serve_runs_a_deployment_triggered_through_the_api(tenants_db, prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    url, _, _ = tenants_db
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_API_KEY"}
    env.update(
        PREFECT_API_URL=PREFECT_API_URL.value(),
        **role_env(url),
        MLOPS_HOME=str(tmp_path / "home"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_RUNNER_POLL_FREQUENCY="1",
    )
    # the session's Prefect server may hold this deployment from `prefect deploy --all` (another test): a
    # deployment made by `prefect deploy` keeps its pull step when `serve` takes it over, so start clean, as the
    # README tells users switching from workers to `mlops serve`
    subprocess.run(
        [str(BIN / "prefect"), "deployment", "delete", "aggregate-metrics/every-5-minutes"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    server = subprocess.Popen(
        [str(BIN / "mlops"), "serve", "--only", "aggregate-metrics/every-5-minutes"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=(tmp_path / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # the deployment appears once `serve` has registered it
            listed = subprocess.run(
                [str(BIN / "prefect"), "deployment", "inspect", "aggregate-metrics/every-5-minutes"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if listed.returncode == 0:
                break
            assert server.poll() is None, "mlops serve exited"
            assert time.monotonic() < deadline, listed.stdout + listed.stderr
            time.sleep(1)
        last_run = "SELECT max(last_run_at) FROM model_monitoring_aggregation_state"
        before = scalar(env, last_run)

        def run_it() -> subprocess.CompletedProcess:
            return subprocess.run(
                [
                    str(BIN / "prefect"),
                    "deployment",
                    "run",
                    "aggregate-metrics/every-5-minutes",
                    "--watch",
                    "--watch-timeout",
                    "120",
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=180,
            )

        ran = run_it()
        assert ran.returncode == 0, ran.stdout + ran.stderr + (tmp_path / "serve.log").read_text()[-4000:]
        assert scalar(env, last_run) > before
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
