"""The `mlops` command line as users and CI run it: a real process, exit codes, one line on stderr."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, pool, text

from tests.fixtures.cli import mlops, one_line_error, scalar

MODEL = "acme/fraud-detection/Credit Card Fraud Model"


class TestDatabaseCommands:
    def test_current_revision_is_head(self, cli_env):
        result = mlops(cli_env, "db", "current")
        assert result.returncode == 0 and "(head)" in result.stdout

    def test_seed_twice_changes_nothing(self, seeded):
        before = (
            scalar(seeded, "SELECT count(*) FROM model_stage_transitions"),
            scalar(seeded, "SELECT count(*) FROM model_monitoring"),
        )
        again = mlops(seeded, "seed")
        assert again.returncode == 0 and "unchanged" in again.stdout
        assert (
            scalar(seeded, "SELECT count(*) FROM model_stage_transitions"),
            scalar(seeded, "SELECT count(*) FROM model_monitoring"),
        ) == before
        assert scalar(seeded, "SELECT stage FROM model_versions WHERE version = '1.0.0'") == "production"

    def test_unreachable_database_is_one_line_and_exit_4(self, cli_env):
        nowhere = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
        broken = {**cli_env, "DATABASE_URL": nowhere, "MLOPS_MIGRATION_DATABASE_URL": nowhere}
        result = mlops(broken, "db", "current")
        assert result.returncode == 4
        assert "error:" in one_line_error(result)


class TestPromoteFromCi:
    @pytest.fixture(scope="class")
    def ci_key(self, seeded):
        created = mlops(
            seeded,
            "keys",
            "create",
            "--org",
            "acme",
            "--as",
            "admin@acme.example",
            "--user",
            "admin@acme.example",
            "--name",
            "ci",
            "--scope",
            "models:promote:staging",
            "--scope",
            "models:read",
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert key.startswith("mlk_") and "shown only this once" in created.stderr
        assert (
            scalar(
                seeded, f"SELECT count(*) FROM api_keys WHERE key_hash LIKE 'sha256:%' AND key_prefix = '{key[:12]}'"
            )
            == 1
        )
        return key

    def test_exit_0_on_success(self, seeded, ci_key):
        result = mlops(seeded, "promote", MODEL, "1.2.0", "--to", "staging", "--reason", "ci", api_key=ci_key)
        assert result.returncode == 0, result.stderr
        assert "1.2.0: development → staging" in result.stdout
        assert scalar(seeded, "SELECT stage FROM model_versions WHERE version = '1.2.0'") == "staging"

    def test_exit_3_when_the_key_lacks_the_scope(self, seeded, ci_key):
        result = mlops(seeded, "promote", MODEL, "1.1.0", "--to", "production", api_key=ci_key)
        assert result.returncode == 3
        assert "lacks scope 'models:promote:production'" in one_line_error(result)

    def test_exit_1_when_a_gate_rejects(self, seeded):
        result = mlops(seeded, "promote", MODEL, "1.2.0", "--to", "production", "--as", "admin@acme.example", "--json")
        assert result.returncode == 1
        body = json.loads(result.stdout)
        assert body["status"] == "rejected" and any(not g["passed"] for g in body["gates"])
        assert "rejected by" in one_line_error(result)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ((MODEL, "1.0", "--to", "staging"), "malformed version"),
            ((MODEL, "9.9.9", "--to", "staging"), "has no version '9.9.9'"),
            (("acme/fraud-detection/Nope", "1.0.0", "--to", "staging"), "unknown model"),
            (("acme/fraud-detection", "1.0.0", "--to", "staging"), "ORG/PROJECT/MODEL"),
            ((MODEL, "1.1.0", "--to", "prod"), "unknown stage"),
            ((MODEL, "1.1.0", "--to", "production", "--force"), "--force needs a --reason"),
            ((MODEL, "1.1.0"), "Missing option '--to'"),
        ],
    )
    def test_exit_2_for_bad_input(self, seeded, args, message):
        result = mlops(seeded, "promote", *args, "--as", "admin@acme.example")
        assert result.returncode == 2
        assert message in one_line_error(result)

    def test_exit_3_for_a_user_of_another_organization_or_a_viewer(self, seeded):
        denied = "SELECT count(*) FROM audit_logs WHERE action = 'model_version.promote.denied'"
        before = scalar(seeded, denied)
        stage = scalar(seeded, "SELECT stage FROM model_versions WHERE version = '1.0.0'")
        viewer = mlops(seeded, "promote", MODEL, "1.0.0", "--to", "archived", "--as", "viewer@acme.example")
        assert viewer.returncode == 3
        assert "may not model.archive" in one_line_error(viewer)
        assert scalar(seeded, denied) == before + 1  # the refusal leaves one audit row
        assert scalar(seeded, "SELECT stage FROM model_versions WHERE version = '1.0.0'") == stage
        # refused before any lookup: a version that does not exist is not revealed to someone who may not promote
        ghost = mlops(seeded, "promote", MODEL, "9.9.9", "--to", "staging", "--as", "viewer@acme.example")
        assert ghost.returncode == 3 and "may not model.promote.staging" in one_line_error(ghost)
        stranger = mlops(seeded, "keys", "list", "--org", "acme", "--as", "nobody@else.example")
        assert stranger.returncode == 2 and "unknown user" in one_line_error(stranger)

    def test_dry_run_json(self, seeded):
        result = mlops(
            seeded, "promote", MODEL, "1.1.0", "--to", "production", "--dry-run", "--json", "--as", "admin@acme.example"
        )
        decision = json.loads(result.stdout)
        assert decision["status"] == "dry_run"
        assert result.returncode == (0 if all(g["passed"] for g in decision["gates"]) else 1)
        assert scalar(seeded, "SELECT stage FROM model_versions WHERE version = '1.1.0'") == "staging"

    def test_dry_run_exits_1_when_the_gates_would_reject(self, seeded):
        engine = create_engine(seeded["MLOPS_MIGRATION_DATABASE_URL"], poolclass=pool.NullPool)
        with engine.begin() as conn:  # a high alert on the staging deployment blocks production
            alert = conn.execute(
                text(
                    "INSERT INTO alerts (organization_id, deployment_id, alert_type, severity, title, message) "
                    "SELECT d.organization_id, d.id, 'custom', 'high', 'probe', 'probe' FROM deployments d "
                    "JOIN projects p ON p.id = d.project_id "
                    "WHERE p.slug = 'fraud-detection' AND d.environment = 'staging' LIMIT 1 RETURNING id"
                )
            ).scalar_one()
        try:
            result = mlops(
                seeded, "promote", MODEL, "1.1.0", "--to", "production", "--dry-run", "--as", "admin@acme.example"
            )
            assert result.returncode == 1, result.stdout + result.stderr
            assert "would be rejected" in result.stdout
        finally:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM alerts WHERE id = :id"), {"id": alert})
            engine.dispose()
        assert scalar(seeded, "SELECT stage FROM model_versions WHERE version = '1.1.0'") == "staging"


class TestRegister:
    def test_register_then_same_again_then_a_different_artifact(self, seeded, tmp_path):
        artifact = tmp_path / "model.bin"
        artifact.write_bytes(b"weights v2.0.0")
        metrics = tmp_path / "metrics.json"
        metrics.write_text(json.dumps({"auc": 0.97, "precision": 0.8, "recall": 0.8}))
        args = (
            "register",
            MODEL,
            "2.0.0",
            "--artifact",
            str(artifact),
            "--metrics",
            str(metrics),
            "--as",
            "dev@acme.example",
        )
        first = mlops(seeded, *args)
        assert first.returncode == 0, first.stderr
        assert "registered" in first.stdout
        again = mlops(seeded, *args)
        assert again.returncode == 0 and "unchanged" in again.stdout
        artifact.write_bytes(b"other weights")
        clash = mlops(seeded, *args)
        assert clash.returncode == 1 and "different artifact" in one_line_error(clash)
        row = scalar(seeded, "SELECT model_size_bytes FROM model_versions WHERE version = '2.0.0'")
        assert row == len(b"weights v2.0.0")

    def test_bad_metrics_file(self, seeded, tmp_path):
        artifact = tmp_path / "m.bin"
        artifact.write_bytes(b"x")
        bad = tmp_path / "metrics.json"
        bad.write_text("{not json")
        result = mlops(
            seeded,
            "register",
            MODEL,
            "2.1.0",
            "--artifact",
            str(artifact),
            "--metrics",
            str(bad),
            "--as",
            "dev@acme.example",
        )
        assert result.returncode == 2 and "not valid JSON" in one_line_error(result)


class TestChannelsAndKeys:
    def test_channel_secrets_never_reach_stdout(self, seeded):
        added = mlops(
            seeded,
            "channels",
            "add",
            "--org",
            "acme",
            "--as",
            "admin@acme.example",
            "--name",
            "slack-ml",
            "--type",
            "slack",
            "--config",
            "-",
            stdin='{"webhook_url": "https://hooks.slack.example/T0/B0/s3cr3t"}',
        )
        assert added.returncode == 0, added.stderr
        listed = mlops(seeded, "channels", "list", "--org", "acme", "--as", "admin@acme.example")
        assert (
            listed.returncode == 0
            and "slack-ml" in listed.stdout
            and "https://hooks.slack.example/***" in listed.stdout
        )
        assert "s3cr3t" not in added.stdout + added.stderr + listed.stdout + listed.stderr
        assert "s3cr3t" not in scalar(
            seeded, "SELECT configuration::text FROM notification_channels WHERE name = 'slack-ml'"
        )

    def test_unknown_command_and_option(self, seeded):
        assert mlops(seeded, "nope").returncode == 2
        result = mlops(seeded, "keys", "create", "--bogus")
        assert result.returncode == 2 and "No such option" in one_line_error(result)


class TestDrift:
    def test_compare_two_files(self, seeded, tmp_path):
        from demo.sample_data import transactions

        transactions(2000, seed=1).to_parquet(tmp_path / "ref.parquet")
        transactions(2000, seed=2, drifted=True).to_csv(tmp_path / "cur.csv", index=False)
        result = mlops(seeded, "drift", "compare", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.csv"), "--json")
        assert result.returncode == 1  # dataset drift
        body = json.loads(result.stdout)
        assert body["dataset_drift"] and {c["column"] for c in body["columns"] if c["drifted"]} >= {"amount"}
        same = mlops(seeded, "drift", "compare", str(tmp_path / "ref.parquet"), str(tmp_path / "ref.parquet"))
        assert same.returncode == 0 and "dataset drift: no" in same.stdout

    def test_a_deployment_that_could_not_be_analysed_exits_1_after_printing_every_outcome(self, seeded):
        from pathlib import Path

        reference = Path(
            seeded["MLOPS_HOME"], "artifacts/mlops/datasets/acme/fraud-detection/fraud-api-prod/reference.parquet"
        )
        hidden = reference.with_name("hidden.parquet")
        reference.rename(hidden)
        try:
            result = mlops(
                seeded,
                "drift",
                "--org",
                "acme",
                "--as",
                "dev@acme.example",
                "--start",
                "2026-11-24T09:00:00Z",
                "--end",
                "2026-11-24T10:00:00Z",
            )
        finally:
            hidden.rename(reference)
        assert result.returncode == 1
        assert "fraud-api-prod (production): failed: reference dataset" in result.stdout
        assert result.stderr.strip().splitlines()[-1].endswith(" deployment(s) could not be analysed")

    def test_drift_exits_1_like_drift_compare_and_0_without_drift(self, seeded):
        from datetime import UTC, datetime
        from pathlib import Path

        from demo.sample_data import logged_inputs

        start, end = datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)
        logs = Path(seeded["MLOPS_HOME"], "artifacts/mlops/inference-logs/acme/fraud-detection")
        for deployment, drifted in (("fraud-api-prod", True), ("fraud-api-staging", False)):
            folder = logs / deployment / "date=2026-11-20"
            folder.mkdir(parents=True, exist_ok=True)
            logged_inputs(start, end, per_hour=1500, seed=11, drifted=drifted).to_parquet(folder / "cli.parquet")
        window = ("--start", start.isoformat(), "--end", end.isoformat(), "--as", "dev@acme.example")
        drifted = mlops(
            seeded, "drift", "--deployment", "acme/fraud-detection/fraud-api-prod", "--env", "production", *window
        )
        assert drifted.returncode == 1, drifted.stdout + drifted.stderr
        assert "drift" in drifted.stdout and not drifted.stderr.strip()
        calm = mlops(
            seeded, "drift", "--deployment", "acme/fraud-detection/fraud-api-staging", "--env", "staging", *window
        )
        assert calm.returncode == 0, calm.stdout + calm.stderr


class TestInvitations:
    def test_accepting_without_an_invitation_is_one_line_and_exit_2(self, seeded):
        result = mlops(seeded, "users", "accept", "--org", "acme", "--as", "viewer@acme.example")
        assert result.returncode == 2
        assert "no pending invitation of viewer@acme.example" in one_line_error(result)

    def test_a_new_member_joins_at_once(self, seeded):
        result = mlops(
            seeded,
            "users",
            "add",
            "Newbie@acme.example",
            "--first-name",
            "N",
            "--last-name",
            "B",
            "--org",
            "acme",
            "--as",
            "admin@acme.example",
        )
        assert result.returncode == 0, result.stderr
        assert "is now viewer of acme" in result.stdout
        again = mlops(
            seeded,
            "users",
            "add",
            "newbie@ACME.example",
            "--first-name",
            "N",
            "--last-name",
            "B",
            "--org",
            "acme",
            "--as",
            "admin@acme.example",
        )
        assert again.returncode == 1 and "already a member" in one_line_error(again)
        assert scalar(seeded, "SELECT count(*) FROM users WHERE lower(email) = 'newbie@acme.example'") == 1
