"""`mlops ui` / `make ui`: the options are checked before anything starts; the environment it gives the server,
worker and demo keeps Prefect local (analytics off, state under MLOPS_HOME)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from core.errors import InvalidInput
from mlops.cli.ui import make_plan
from tests.fixtures.cli import MLOPS, one_line_error

ROOT = Path(__file__).resolve().parents[1]


def run_ui(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "MLOPS_HOME": str(tmp_path / "home"), "DO_NOT_TRACK": "1"}
    return subprocess.run([MLOPS, "ui", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["--port", "70000"], "--port must be between 1 and 65535"),
        (["--workers", "0"], "--workers must be between 1 and 8, got 0"),
        (["--host", "a b"], "--host must be a host name or address"),
        (["--port", "many"], "Invalid value for '--port'"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_start_nothing(tmp_path, args, message):
    done = run_ui(tmp_path, *args)
    assert done.returncode == 2
    assert message in one_line_error(done)
    assert not (tmp_path / "home" / "prefect").exists()


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run_ui(tmp_path, "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2
    assert "pass another --port" in one_line_error(done)
    assert not (tmp_path / "home" / "prefect").exists()


def test_the_environment_keeps_prefect_local_and_drops_the_api_key(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plan = make_plan("127.0.0.1", port, 2, False, tmp_path / "home", tmp_path / "home" / "prefect")
    env = plan.environment({"MLOPS_API_KEY": "mlk_secret", "PATH": "/bin"})
    assert plan.ui_url == f"http://127.0.0.1:{port}"
    assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{port}/api"
    assert env["PREFECT_HOME"] == str(tmp_path / "home" / "prefect")
    assert env["MLOPS_HOME"] == str(tmp_path / "home")
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert "MLOPS_API_KEY" not in env and env["PATH"] == "/bin"
    with pytest.raises(InvalidInput):
        make_plan("127.0.0.1", port, 9, False, tmp_path, tmp_path)


def test_make_ui_passes_its_arguments_and_keeps_prefect_home_in_the_project():
    dry = subprocess.run(
        ["make", "-n", "ui", "UI_ARGS=--port 4300 --no-demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert dry.returncode == 0, dry.stderr
    assert ".venv/bin/mlops ui --port 4300 --no-demo" in dry.stdout
    assert f"mkdir -p {ROOT}/.mlops/prefect" in dry.stdout


@pytest.mark.slow
def test_it_starts_the_server_and_a_worker_and_ctrl_c_stops_them(tmp_path):
    import os
    import signal
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PREFECT_API_URL", "MLOPS_API_KEY")}
    env.update(MLOPS_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "home" / "prefect"))
    for key in ("MLOPS_MAINTENANCE_DATABASE_URL", "MLOPS_MIGRATION_DATABASE_URL"):
        env.pop(key, None)
    ui = subprocess.Popen(
        [MLOPS, "ui", "--port", str(port), "--no-demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in ui.stdout:
            lines.append(line)
            if line.startswith("Prefect UI:"):
                break
        assert lines and lines[-1].startswith(f"Prefect UI: http://127.0.0.1:{port}"), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as health:
            assert health.status == 200
        children = [p for p in _processes_under(ui.pid)]
        assert any("server start" in c for c in children) and any("worker start" in c for c in children)
        ui.send_signal(signal.SIGINT)
        assert ui.wait(timeout=120) == 0
        time.sleep(1)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
        assert not [p for p in _processes_with(str(tmp_path))], "something it started is still running"
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)


def _processes_under(pid: int) -> list[str]:
    import psutil

    return [" ".join(c.cmdline()) for c in psutil.Process(pid).children(recursive=True)]


def _processes_with(text: str) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if text in " ".join(proc.cmdline()) or text in proc.environ().get("PREFECT_HOME", ""):
                found.append(" ".join(proc.cmdline()))
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
