"""`mlops ui` (`make ui`): a local Prefect server and worker over the embedded database, every flow deployed,
the demo run through them, and the UI's address; Ctrl-C stops everything it started.

Everything runs on this machine and stays in it: the Prefect server keeps its state under `PREFECT_HOME`
(default `MLOPS_HOME/prefect`), analytics are off, and the worker's flow runs reach the same embedded
PostgreSQL as `make demo` (this process keeps it running until it stops).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from core.errors import InvalidInput, MlopsError

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# the deployments the worker runs once after the demo, so its runs show up next to the demo's
WORKER_RUNS = ("aggregate-metrics/every-5-minutes", "detect-drift/hourly", "enforce-retention/daily")


@dataclass(frozen=True)
class UiPlan:
    host: str
    port: int
    workers: int
    demo: bool
    mlops_home: Path
    prefect_home: Path

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """What every process started here runs with: this server, no analytics, Prefect state in the project."""
        env = {k: v for k, v in base.items() if k != "MLOPS_API_KEY"}  # the demo acts as its seeded users
        env.update(
            MLOPS_HOME=str(self.mlops_home),
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PWD=str(ROOT),  # prefect.yaml's pull step: the worker runs flows from this checkout
        )
        return env


def make_plan(host: str, port: int, workers: int, demo: bool, mlops_home: Path, prefect_home: Path) -> UiPlan:
    """Validate the options (InvalidInput, one line) before anything starts."""
    if not host or any(c.isspace() for c in host):
        raise InvalidInput(f"--host must be a host name or address, got {host!r}")
    if not 1 <= port <= 65535:
        raise InvalidInput(f"--port must be between 1 and 65535, got {port}")
    if not 1 <= workers <= 8:
        raise InvalidInput(f"--workers must be between 1 and 8, got {workers}")
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidInput(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None
    return UiPlan(host=host, port=port, workers=workers, demo=demo, mlops_home=mlops_home, prefect_home=prefect_home)


def ui(
    port: Annotated[int, typer.Option("--port", help="Port of the Prefect server (API and UI).")] = 4200,
    host: Annotated[str, typer.Option("--host", help="Address the Prefect server listens on.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option("--workers", help="Process workers to start (1-8).")] = 1,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Run the demo through the server first.")] = True,
) -> None:
    """Start a local Prefect server and worker over the embedded database, deploy every flow, run the demo
    through them and print the UI's address. Ctrl-C stops everything it started."""
    from core.settings import mlops_home

    home = mlops_home()
    plan = make_plan(host, port, workers, demo, home, Path(os.environ.get("PREFECT_HOME") or home / "prefect"))
    plan.prefect_home.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    # Ctrl-C, and a plain `kill` too, stop what this started (a shell may start it with SIGINT ignored)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_stack(plan, started)
        typer.echo(f"\nPrefect UI: {plan.ui_url}   (API {plan.api_url}; Ctrl-C stops the server and workers)")
        while all(p.poll() is None for p in started):
            time.sleep(1)
        raise MlopsError("a Prefect process exited on its own; see its output above")
    except KeyboardInterrupt:
        typer.echo("\nstopping ...", err=True)
    finally:
        for proc in reversed(started):
            stop(proc)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_stack(plan: UiPlan, started: list[subprocess.Popen]) -> None:
    from db.embedded import embedded_database_url

    if "DATABASE_URL" not in os.environ:
        # holding the embedded server here keeps it up for the worker's flow runs until Ctrl-C
        embedded_database_url(plan.mlops_home)
    env = plan.environment(dict(os.environ))
    step("migrating the schema", [str(BIN / "mlops"), "db", "upgrade"], env)
    logs = plan.prefect_home / "logs"
    logs.mkdir(exist_ok=True)
    typer.echo(f"starting the Prefect server on {plan.ui_url} (log: {logs / 'server.log'})")
    started.append(
        spawn(
            [str(BIN / "prefect"), "server", "start", "--host", plan.host, "--port", str(plan.port)],
            env,
            logs / "server.log",
        )
    )
    wait_healthy(plan.api_url, started[-1])
    step(
        "creating work pool 'mlops'",
        [str(BIN / "prefect"), "work-pool", "create", "mlops", "--type", "process", "--overwrite"],
        env,
    )
    step(
        "pointing the deployments' pull step at this checkout (Prefect variable mlops_checkout)",
        [str(BIN / "prefect"), "variable", "set", "mlops_checkout", str(ROOT), "--overwrite"],
        env,
    )
    step("deploying every flow of prefect.yaml", [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)
    for i in range(plan.workers):
        typer.echo(f"starting worker {i + 1} (log: {logs / f'worker-{i + 1}.log'})")
        started.append(
            spawn(
                [str(BIN / "prefect"), "worker", "start", "--pool", "mlops", "--name", f"local-{i + 1}"],
                env,
                logs / f"worker-{i + 1}.log",
            )
        )
    if plan.demo:
        typer.echo("running the demo; its flow runs report to the server")
        subprocess.run([str(BIN / "mlops"), "demo"], env=env, cwd=ROOT, check=False)
    for name in WORKER_RUNS:
        step(f"queueing {name} for the worker", [str(BIN / "prefect"), "deployment", "run", name], env)


def step(what: str, args: list[str], env: dict[str, str]) -> None:
    typer.echo(what)
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise MlopsError(f"{what} failed: {detail[-1] if detail else f'exit {done.returncode}'}")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # its own process group: Ctrl-C reaches only this command, which then stops the group in order
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_healthy(api_url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request  # here, not at start-up: it loads http.client and ssl

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise MlopsError("the Prefect server exited; see its log")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise MlopsError(f"the Prefect server did not answer on {api_url} within {timeout:.0f} s")
