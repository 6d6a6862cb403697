"""What CI sees: `--submit` maps a flow run's end to our exit codes; Prefect or the database down is exit 4."""

from __future__ import annotations

import socket

import pytest

from core.errors import GateRejected, InfrastructureError, InvalidInput, MlopsError, PermissionDenied
from services.prefect_runs import outcome_error
from tests.fixtures.cli import mlops, one_line_error

MODEL = "acme/fraud-detection/Credit Card Fraud Model"


@pytest.mark.parametrize(
    ("state", "message", "error", "code"),
    [
        ("COMPLETED", None, None, 0),
        ("FAILED", "GateRejected: staging_soak 0.0 h < 24 h", GateRejected, 1),
        ("FAILED", "InvalidInput: version must be X.Y.Z", InvalidInput, 2),
        ("FAILED", "PermissionDenied: dev@acme.example may not model.promote.production", PermissionDenied, 3),
        ("FAILED", "Flow run encountered an exception: RuntimeError: a bug", MlopsError, 1),
        ("CRASHED", "Flow run infrastructure exited with non-zero status code -9.", InfrastructureError, 4),
        ("CANCELLED", None, InfrastructureError, 4),
    ],
)
def test_a_finished_run_maps_to_the_local_commands_exit_code(state, message, error, code):
    found = outcome_error(state, message)
    if error is None:
        assert found is None
        return
    assert type(found) is error and found.exit_code == code
    if message and ": " in message and error is not MlopsError:
        assert str(found) == message.split(": ", 1)[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_submit_without_a_reachable_prefect_api_is_one_line_exit_4(cli_env):
    env = dict(cli_env, PREFECT_API_URL=f"http://127.0.0.1:{closed_port()}/api")
    result = mlops(env, "promote", MODEL, "1.1.0", "--to", "staging", "--submit", "--as", "admin@acme.example")
    assert result.returncode == 4, result.stderr
    assert "unreachable" in one_line_error(result)


def test_submit_without_prefect_api_url_is_bad_input(cli_env):
    env = {k: v for k, v in cli_env.items() if k != "PREFECT_API_URL"}
    env["PREFECT_API_URL"] = ""
    result = mlops(env, "promote", MODEL, "1.1.0", "--to", "staging", "--submit", "--as", "admin@acme.example")
    assert result.returncode == 2 and "PREFECT_API_URL" in one_line_error(result)


def test_a_database_that_is_down_is_one_line_exit_4(cli_env):
    down = f"postgresql://mlops_login@127.0.0.1:{closed_port()}/mlops"
    env = dict(cli_env, DATABASE_URL=down, MLOPS_MAINTENANCE_DATABASE_URL=down)
    result = mlops(env, "history", MODEL, "--as", "viewer@acme.example")
    assert result.returncode == 4, result.stderr
    one_line_error(result)
