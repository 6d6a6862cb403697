"""`mlops rollout / rollback / terminate / deployments` as users run them, against the seeded demo organization and
a serving platform on 127.0.0.1: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, pool, text

from demo.serving_stub import ServingStub
from tests.fixtures.cli import mlops, one_line_error, scalar

REF = "acme/fraud-detection/fraud-api-prod"
ADMIN = "admin@acme.example"


@pytest.fixture(scope="module")
def platform(seeded):
    stub = ServingStub().start()
    config = {
        "backend": "http",
        "control_url": stub.control_url("fraud-api-prod"),
        "steps": [20, 100],
        "bake_seconds": 0.1,
        "health_timeout_seconds": 1.0,
        "poll_interval_seconds": 0.05,
    }
    engine = create_engine(seeded["MLOPS_MIGRATION_DATABASE_URL"], poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE deployments SET endpoint_url = :e, deployment_config = deployment_config || "
                "jsonb_build_object('serving', CAST(:c AS jsonb)) WHERE name = 'fraud-api-prod'"
            ),
            {"e": stub.endpoint_url("fraud-api-prod"), "c": json.dumps(config)},
        )
    engine.dispose()
    yield stub
    stub.stop()


def writes(env) -> tuple:
    return (
        scalar(env, "SELECT count(*) FROM deployment_history"),
        scalar(env, "SELECT count(*) FROM audit_logs WHERE action NOT LIKE '%.denied'"),
        scalar(env, "SELECT count(*) FROM notification_events"),
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["rollout", "acme/fraud-api-prod", "--env", "production", "--version", "1.1.0"], 2, "is not ORG/PROJECT"),
        (["rollout", REF, "--env", "prod", "--version", "1.1.0"], 2, "--env must be one of"),
        (["rollout", REF, "--env", "production", "--version", "1.1.0", "--steps", "10,50"], 2, "last step must be 100"),
        (["rollout", REF, "--env", "production", "--version", "1.1.0"], 2, "is in staging; a production deployment"),
        (["rollout", "acme/fraud-detection/nope", "--env", "production", "--version", "1.1.0"], 2, "no deployment"),
        (["rollout", REF, "--env", "production", "--version", "1.1.0", "--as", "dev@acme.example"], 3, "may not"),
    ],
)
def test_bad_input_fails_with_one_line_and_writes_nothing(platform, seeded, args, code, message):
    before = writes(seeded)
    result = mlops(seeded, *args, *([] if "--as" in args else ["--as", ADMIN]))
    assert result.returncode == code, result.stderr
    assert message in one_line_error(result)
    assert writes(seeded) == before and not [r for r in platform.requests if r.method == "PUT"]


@pytest.mark.slow
def test_rollout_rollback_terminate_and_listing(platform, seeded):
    ok = mlops(
        seeded,
        "rollout",
        REF,
        "--env",
        "production",
        "--version",
        "1.1.0",
        "--force",
        "--reason",
        "hotfix",
        "--as",
        ADMIN,
    )
    assert ok.returncode == 0, ok.stderr
    assert "1.0.0 -> 1.1.0 rolled out" in ok.stdout and "step 2  100%  ok" in ok.stdout
    assert platform.split_puts() == [{"1.1.0": 20, "1.0.0": 80}, {"1.1.0": 100}]

    again = mlops(
        seeded,
        "rollout",
        REF,
        "--env",
        "production",
        "--version",
        "1.1.0",
        "--as",
        ADMIN,
        "--force",
        "--reason",
        "hotfix",
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout

    listing = mlops(seeded, "deployments", "--org", "acme", "--as", ADMIN, "--json")
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["fraud-api-prod"]["version"] == "1.1.0" and rows["fraud-api-prod"]["last_action"] == "update"
    text_listing = mlops(seeded, "deployments", "--org", "acme", "--as", ADMIN)
    assert "fraud-detection/fraud-api-prod" in text_listing.stdout and "1.1.0 100%" in text_listing.stdout

    platform.unready = {"1.2.0"}
    failed = mlops(
        seeded, "rollout", REF, "--env", "production", "--version", "1.2.0", "--force", "--reason", "try", "--as", ADMIN
    )
    assert failed.returncode == 1
    assert "not ready: 1.2.0" in one_line_error(failed) and "rolled back to 1.1.0" in one_line_error(failed)
    assert scalar(seeded, "SELECT status FROM deployments WHERE name = 'fraud-api-prod'") == "active"

    back = mlops(seeded, "rollback", REF, "--env", "production", "--reason", "latency", "--as", ADMIN)
    assert back.returncode == 0 and "rolled back to 1.0.0" in back.stdout, back.stderr
    again = mlops(
        seeded, "rollback", REF, "--env", "production", "--reason", "latency", "--as", ADMIN, "--to-version", "1.0.0"
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout

    history = mlops(seeded, "deployments", "history", REF, "--env", "production", "--as", ADMIN)
    lines = history.stdout.splitlines()
    assert "rollback  1.0.0" in lines[0] and any("update    1.2.0     failed" in line for line in lines)

    stop = mlops(seeded, "terminate", REF, "--env", "production", "--reason", "retired", "--as", ADMIN)
    assert stop.returncode == 0 and "terminated" in stop.stdout
    assert platform.puts()[-1] == []
    assert mlops(seeded, "terminate", REF, "--env", "production", "--reason", "retired", "--as", ADMIN).returncode == 0
    assert scalar(seeded, "SELECT status FROM deployments WHERE name = 'fraud-api-prod'") == "inactive"
