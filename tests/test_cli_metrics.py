"""`mlops aggregate` and `mlops metrics` as users run them: real processes, exit codes, one line on stderr."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.cli import mlops, one_line_error, scalar

PROD = "acme/fraud-detection/fraud-api-prod"


def test_aggregate_rolls_up_the_seeded_points_then_reads_them(seeded):
    first = mlops(seeded, "aggregate", "--json")
    assert first.returncode == 0, first.stderr
    [acme] = json.loads(first.stdout)["organizations"]
    assert acme["organization"] == "acme" and acme["backfilled_windows"] >= 1
    rollups = scalar(seeded, "SELECT count(*) FROM model_monitoring_rollups WHERE granularity = 'hour'")
    assert rollups >= 24 * 3
    again = mlops(seeded, "aggregate")
    assert again.returncode == 0 and "0 rollup(s) written" in again.stdout

    shown = mlops(
        seeded,
        "metrics",
        PROD,
        "--env",
        "production",
        "--metric",
        "latency_p95_ms",
        "--as",
        "viewer@acme.example",
        "--json",
    )
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert rows and {r["metric_name"] for r in rows} == {"latency_p95_ms"}
    assert {r["source"] for r in rows} == {"rollup"}
    table = mlops(seeded, "metrics", PROD, "--env", "production", "--granularity", "day", "--as", "viewer@acme.example")
    assert table.returncode == 0 and "error_rate" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["metrics", "acme/fraud-detection", "--env", "production"], 2, "is not ORG/PROJECT/DEPLOYMENT"),
        (["metrics", PROD, "--env", "prod"], 2, "--env must be one of"),
        (["metrics", PROD, "--env", "production", "--granularity", "week"], 2, "--granularity must be hour or day"),
        (["metrics", PROD, "--env", "production", "--since", "yesterday"], 2, "not an ISO 8601"),
        (["metrics", "acme/fraud-detection/nope", "--env", "production"], 2, "no deployment"),
        (["metrics", "other/fraud-detection/fraud-api-prod", "--env", "production"], 2, "unknown organization"),
        (["aggregate", "--org", "nope"], 2, "unknown organization 'nope'"),
        (["aggregate", "--since", "2026-13-01"], 2, "not an ISO 8601"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(seeded, args, code, message):
    before = scalar(seeded, "SELECT count(*) FROM model_monitoring_rollups")
    result = mlops(seeded, *args, "--as", "admin@acme.example") if args[0] == "metrics" else mlops(seeded, *args)
    assert result.returncode == code, result.stderr
    assert message in one_line_error(result)
    assert scalar(seeded, "SELECT count(*) FROM model_monitoring_rollups") == before
