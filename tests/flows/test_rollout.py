"""Flows rollout-deployment, rollback-deployment and terminate-deployment against a real database and a serving
platform on 127.0.0.1 (the demo's stub): rows, history, registry, audit, outbox and what the platform got."""

from __future__ import annotations

import pytest

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RolloutFailed
from demo.serving_stub import ServingStub
from flows.rollout import rollback_deployment, rollout_deployment, terminate_deployment
from tests.flows.rollout_world import RolloutDb

PROD = dict(organization="alpha", project="fraud", deployment="fraud-api-production", environment="production")
ADMIN = "admin@alpha.example"


@pytest.fixture
def stub():
    platform = ServingStub().start()
    yield platform
    platform.stop()


@pytest.fixture
def db(tenants_db, stub, tmp_path, monkeypatch):
    url, alpha, _ = tenants_db
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "store").as_uri())
    database = RolloutDb(url, alpha, stub)
    database.prepare()
    promote_in_registry(database)
    yield database
    database.close()


def promote_in_registry(db: RolloutDb) -> None:
    """1.1.0 to production (1.0.0 archived), as a promotion would leave it."""
    db.run("UPDATE model_versions SET stage = 'archived' WHERE id = :v", v=db.t["v100"])
    db.run("UPDATE model_versions SET stage = 'production' WHERE id = :v", v=db.t["v110"])


def rollout(**kwargs):
    return rollout_deployment.fn(**{**PROD, "version": "1.1.0", "actor": ADMIN, **kwargs})


class TestHealthyRollout:
    def test_steps_complete_and_everything_is_recorded(self, db, stub):
        summary = rollout()
        assert summary["status"] == "completed" and [s["percent"] for s in summary["steps"]] == [10, 50, 100]
        assert stub.split_puts() == [{"1.1.0": 10, "1.0.0": 90}, {"1.1.0": 50, "1.0.0": 50}, {"1.1.0": 100}]
        put = stub.puts()[0][0]
        assert put["artifact_uri"].endswith("1.1.0/model.bin") and put["model_version_id"] == str(db.t["v110"])
        body = next(s.body for s in stub.requests if s.method == "PUT")
        assert body["name"] == "fraud-api-production" and body["environment"] == "production"
        assert body["config"] == {"env": {"LOG_LEVEL": "info"}} and "serving" not in body["config"]
        assert any(s.path == "/health" for s in stub.requests)
        deployment = db.deployment()
        assert deployment["status"] == "active" and deployment["version"] == "1.1.0" and deployment["deployed_at"]
        assert db.history() == [("deploy", "1.0.0", "completed"), ("update", "1.1.0", "completed")]
        assert db.audit() == ["deployment.rollout"]
        assert db.events() == [("deployment", "deployment.rolled_out", "info")]
        assert db.stages()["1.1.0"] == "production" and db.alerts() == []
        assert db.transitions() == []

    def test_a_second_run_is_a_no_op(self, db, stub):
        rollout()
        before = (db.history(), db.audit(), db.events(), len(stub.requests))
        assert rollout()["status"] == "noop"
        assert (db.history(), db.audit(), db.events(), len(stub.requests)) == before

    def test_500s_then_healthy_is_retried_inside_the_budget(self, db, stub):
        stub.errors = 3
        assert rollout(steps=[100], health_timeout_seconds=3)["status"] == "completed"
        assert sum(1 for s in stub.requests if s.method == "PUT") == 4  # three 500s, then accepted
        assert db.deployment()["version"] == "1.1.0"

    def test_registry_only_deployment_records_history_and_drives_nothing(self, db, stub):
        db.run("UPDATE deployments SET deployment_config = '{}' WHERE id = :d", d=db.deployment_id)
        summary = rollout()
        assert summary["status"] == "completed" and summary["driven"] is False and stub.requests == []
        assert db.deployment()["version"] == "1.1.0"
        assert db.history()[-1] == ("update", "1.1.0", "completed")


class TestFailedRollout:
    def assert_reverted(self, db, stub, error: str):
        deployment = db.deployment()
        assert deployment["status"] == "active" and deployment["version"] == "1.0.0"
        assert db.history() == [
            ("deploy", "1.0.0", "completed"),
            ("update", "1.1.0", "failed"),
            ("rollback", "1.0.0", "completed"),
        ]
        failed = next(r for r in db.history_rows() if r["status"] == "failed")
        assert error in failed["error_message"]
        assert stub.split_puts()[-1] == {"1.0.0": 100}
        assert db.alerts() == [("high", "Rollout of 1.1.0 to alpha/fraud/fraud-api-production (production) failed")]
        assert db.audit() == ["deployment.rollout.failed"]
        assert ("deployment", "deployment.rollout_failed", "high") in db.events()
        assert ("alert", "alert.opened", "high") in db.events()
        # not started by a promotion: the registry and its history are left as they were
        assert db.stages() == {"1.0.0": "archived", "1.1.0": "production", "1.2.0": "development"}
        assert db.transitions() == []

    def test_never_ready(self, db, stub):
        stub.unready = {"1.1.0"}
        with pytest.raises(RolloutFailed, match="step 1 \\(10%\\) failed: health not reached within 0.5s: not ready"):
            rollout()
        self.assert_reverted(db, stub, "not ready: 1.1.0")
        assert stub.split_puts() == [{"1.1.0": 10, "1.0.0": 90}, {"1.0.0": 100}]

    def test_ready_but_serving_the_wrong_split(self, db, stub):
        stub.wrong_split = True
        with pytest.raises(RolloutFailed, match="serving 1.0.0 100% \\+ 1.1.0 0%|serving 1.0.0 100%"):
            rollout()
        self.assert_reverted(db, stub, "serving 1.0.0 100% + 1.1.0 0%, requested 1.0.0 90% + 1.1.0 10%")

    def test_hanging_past_the_timeout(self, db, stub):
        stub.hang_on, stub.hang_seconds = {"1.1.0"}, 2.0
        with pytest.raises(RolloutFailed, match="timed out"):
            rollout()
        self.assert_reverted(db, stub, "timed out")

    def test_a_4xx_is_permanent(self, db, stub):
        stub.reject_put = 422
        with pytest.raises(RolloutFailed, match="rejected: PUT .* 422"):
            rollout()
        assert sum(1 for s in stub.requests if s.method == "PUT") == 2  # the step once, the revert once
        assert db.deployment()["status"] == "failed"  # the revert was refused too

    def test_anomalies_during_the_bake(self, db, stub):
        db.anomaly(5)  # before the step began: not counted
        db.configure(bake_seconds=1.0)
        import threading
        import time

        def write_anomalies():
            time.sleep(0.3)
            db.anomaly(3)

        writer = threading.Thread(target=write_anomalies)
        writer.start()
        with pytest.raises(RolloutFailed, match="3 anomalous monitoring point\\(s\\) during the bake \\(at most 2\\)"):
            rollout()
        writer.join()
        self.assert_reverted(db, stub, "anomalous")

    def test_refused_connections_fail_and_say_the_platform_did_not_come_back(self, db, stub):
        from tests.fixtures.peers import free_port

        db.configure(control_url=f"http://127.0.0.1:{free_port()}/control")
        with pytest.raises(RolloutFailed, match="connection refused.*rollback to 1.0.0 failed too"):
            rollout()
        assert db.deployment()["status"] == "failed"
        assert db.history()[-2:] == [("update", "1.1.0", "failed"), ("rollback", "1.0.0", "failed")]
        assert db.alerts()[0][0] == "critical"


class TestValidation:
    def writes(self, db):
        return (db.history(), db.audit(), db.events())

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({"version": "1.2.0"}, InvalidInput, "is in development; a production deployment takes production"),
            ({"version": "9.9.9"}, NotFound, "has no version '9.9.9'"),
            ({"deployment": "nope"}, NotFound, "no deployment 'nope'"),
            ({"steps": [50]}, InvalidInput, "last step must be 100"),
            ({"force": True}, InvalidInput, "--force needs a --reason"),
        ],
    )
    def test_bad_input_writes_nothing(self, db, stub, kwargs, error, message):
        before = self.writes(db)
        with pytest.raises(error, match=message):
            rollout(**kwargs)
        assert self.writes(db) == before and stub.requests == []

    def test_developer_may_not_roll_out_to_production(self, db, stub):
        with pytest.raises(PermissionDenied):
            rollout(actor="developer@alpha.example")
        assert db.audit() == ["deployment.rollout.denied"] and stub.requests == []

    def test_admin_may_force_a_staging_version_with_a_reason(self, db, stub):
        summary = rollout(version="1.2.0", force=True, reason="hotfix", steps=[100])
        assert summary["forced"] is True and db.deployment()["version"] == "1.2.0"

    def test_missing_artifact(self, db, stub):
        db.run("UPDATE model_versions SET model_size_bytes = 1 WHERE id = :v", v=db.t["v110"])
        with pytest.raises(InvalidInput, match="registered as 1"):
            rollout()


class TestRollbackAndTerminate:
    def test_manual_rollback_goes_back_and_the_registry_follows(self, db, stub):
        rollout(steps=[100])
        summary = rollback_deployment.fn(**PROD, reason="latency", actor=ADMIN)
        assert summary["status"] == "completed" and db.deployment()["version"] == "1.0.0"
        assert stub.split_puts()[-1] == {"1.0.0": 100}
        assert db.history()[-1] == ("rollback", "1.0.0", "completed")
        assert db.stages() == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "development"}
        assert (
            "1.1.0",
            "production",
            "staging",
            "rollback of alpha/fraud/fraud-api-production (production): latency",
        ) in db.transitions()
        again = rollback_deployment.fn(**PROD, reason="latency", actor=ADMIN, to_version="1.0.0")
        assert again["status"] == "noop"

    def test_rollback_needs_a_reason(self, db):
        with pytest.raises(InvalidInput, match="needs a --reason"):
            rollback_deployment.fn(**PROD, actor=ADMIN)

    def test_terminate_is_idempotent(self, db, stub):
        summary = terminate_deployment.fn(**PROD, reason="retired", actor=ADMIN)
        assert summary["status"] == "completed" and stub.puts() == [[]]
        deployment = db.deployment()
        assert deployment["status"] == "inactive" and deployment["terminated_at"] is not None
        assert db.history()[-1] == ("terminate", "1.0.0", "completed")
        assert terminate_deployment.fn(**PROD, reason="retired", actor=ADMIN)["status"] == "noop"
        assert stub.puts() == [[]] and db.audit() == ["deployment.terminate"]


class TestOneAtATime:
    def test_a_second_rollout_fails_fast_while_one_runs(self, db, stub):
        db.configure(bake_seconds=1.5, steps=[100])
        import threading

        results = {}

        def first():
            results["first"] = rollout()

        thread = threading.Thread(target=first)
        thread.start()
        import time

        deadline = time.monotonic() + 5
        while not db.one("SELECT count(*) FROM deployment_history WHERE status = 'in_progress'"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(Conflict, match="already in a update of 1.1.0"):
            rollout()
        thread.join()
        assert results["first"]["status"] == "completed"
        assert db.audit() == ["deployment.rollout"] and db.events() == [("deployment", "deployment.rolled_out", "info")]
        assert stub.split_puts() == [{"1.1.0": 100}]
        assert db.history() == [("deploy", "1.0.0", "completed"), ("update", "1.1.0", "completed")]


class TestPromotion:
    def reset(self, db):
        db.run("UPDATE model_versions SET stage = 'staging' WHERE id = :v", v=db.t["v110"])
        db.run("UPDATE model_versions SET stage = 'production' WHERE id = :v", v=db.t["v100"])

    def test_a_promotion_whose_rollout_fails_restores_the_registry(self, db, stub):
        from flows.promotion import promote_model

        self.reset(db)
        stub.unready = {"1.1.0"}
        with pytest.raises(
            RolloutFailed,
            match="promotion of Fraud Model 1.1.0 to production reverted: rollout of 1.1.0 .* failed: "
            "step 1 .*rolled back to 1.0.0; registry restored \\(1.1.0: production -> staging, "
            "1.0.0: archived -> production\\)",
        ):
            promote_model.fn(
                organization="alpha",
                project="fraud",
                model="Fraud Model",
                version="1.1.0",
                to_stage="production",
                reason="release",
                actor=ADMIN,
            )
        assert db.stages() == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "development"}
        moves = db.transitions()
        assert [m[:3] for m in moves[:2]] == [("1.0.0", "production", "archived"), ("1.1.0", "staging", "production")]
        # the restore: one transaction, two rows whose clock_timestamp() order is not part of the contract
        assert {m[:3] for m in moves[2:]} == {("1.0.0", "archived", "production"), ("1.1.0", "production", "staging")}
        failed_id = next(r["id"] for r in db.history_rows() if r["status"] == "failed")
        assert all(
            f"rollout {failed_id} to alpha/fraud/fraud-api-production (production) failed" in m[3] for m in moves[2:]
        )
        assert db.deployment()["version"] == "1.0.0" and db.deployment()["status"] == "active"
        assert db.history()[-2:] == [("update", "1.1.0", "failed"), ("rollback", "1.0.0", "completed")]
        assert db.audit() == ["model_version.promote", "deployment.rollout.failed", "model_version.restore"]
        assert {e[1] for e in db.events()} == {
            "model_version.promoted",
            "deployment.rollout_failed",
            "model_version.restored",
            "alert.opened",
        }
        assert stub.split_puts() == [{"1.1.0": 10, "1.0.0": 90}, {"1.0.0": 100}]

    def test_a_promotion_rolls_out_in_steps(self, db, stub):
        from flows.promotion import promote_model

        self.reset(db)
        result = promote_model.fn(
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="1.1.0",
            to_stage="production",
            reason="release",
            actor=ADMIN,
        )
        assert result["rollout"] == "rolled out to 1 deployment(s): alpha/fraud/fraud-api-production (production)"
        assert stub.split_puts()[-1] == {"1.1.0": 100} and db.deployment()["version"] == "1.1.0"
        assert db.stages()["1.1.0"] == "production"


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("then", ["rerun", "rollback"])
def test_killed_mid_rollout_then_a_rerun_or_rollback_finishes(db, stub, then):
    import os
    import subprocess
    import sys
    import time

    child = subprocess.run(
        [sys.executable, "-m", "tests.flows.rollout_crash_child"],
        cwd=ROOT,
        env={**os.environ, "MLOPS_ORCHESTRATE": "never"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    assert db.deployment()["status"] == "deploying"
    assert db.history()[-1] == ("update", "1.1.0", "in_progress")
    assert stub.split_puts() == [{"1.1.0": 10, "1.0.0": 90}, {"1.1.0": 50, "1.0.0": 50}]
    with pytest.raises(Conflict, match="already in a update of 1.1.0 .*wait for it to finish"):
        rollout()  # its lease has not expired yet
    deadline = time.monotonic() + 10
    while db.one("SELECT bool_or(expires_at > now()) FROM deployment_history WHERE status = 'in_progress'"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    if then == "rerun":
        summary = rollout()
        assert summary["status"] == "completed" and summary["recovered"]
        assert db.deployment()["status"] == "active" and db.deployment()["version"] == "1.1.0"
        assert db.history()[-2:] == [("update", "1.1.0", "failed"), ("update", "1.1.0", "completed")]
        assert stub.split_puts()[-1] == {"1.1.0": 100}
    else:
        summary = rollback_deployment.fn(**PROD, reason="abandoned rollout", actor=ADMIN)
        assert summary["status"] == "completed" and summary["version"] == "1.0.0"
        assert db.deployment()["status"] == "active" and db.deployment()["version"] == "1.0.0"
        assert db.history()[-2:] == [("update", "1.1.0", "failed"), ("rollback", "1.0.0", "completed")]
        assert stub.split_puts()[-1] == {"1.0.0": 100}
        assert db.stages()["1.0.0"] == "production" and db.stages()["1.1.0"] == "staging"
    abandoned = next(r for r in db.history_rows() if r["status"] == "failed")
    assert abandoned["error_message"].startswith("abandoned: its run stopped before finishing")
    assert "deployment.recover" in db.audit()
    assert db.one("SELECT count(*) FROM deployments WHERE status = 'deploying'") == 0


class TestPromotionEdges:
    def reset(self, db):
        TestPromotion().reset(db)

    def promote(self):
        from flows.promotion import promote_model

        return promote_model.fn(
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="1.1.0",
            to_stage="production",
            reason="release",
            actor=ADMIN,
        )

    def test_a_rollout_that_cannot_start_reverts_the_promotion(self, db, stub):
        self.reset(db)
        db.run("UPDATE model_versions SET model_size_bytes = 1 WHERE id = :v", v=db.t["v110"])
        with pytest.raises(
            RolloutFailed, match="reverted: its rollout could not start: artifact of 1.1.0 .* registered as 1"
        ):
            self.promote()
        assert db.stages() == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "development"}
        assert stub.requests == [] and db.history() == [("deploy", "1.0.0", "completed")]
        assert db.audit() == ["model_version.promote", "model_version.restore"]

    def test_when_a_later_deployment_fails_the_earlier_ones_are_rolled_back(self, db, stub):
        import json

        from tests.fixtures.peers import free_port

        self.reset(db)
        config = {
            "serving": {
                "backend": "http",
                "control_url": f"http://127.0.0.1:{free_port()}/x",
                "health_timeout_seconds": 0.5,
                "poll_interval_seconds": 0.05,
            }
        }
        db.run(
            "INSERT INTO deployments (organization_id, project_id, model_version_id, name, environment, status, "
            "created_by, deployment_config) VALUES (:o, :p, :v, 'fraud-api-production-eu', 'production', 'active', "
            ":u, CAST(:c AS jsonb))",
            o=db.t["org"],
            p=db.t["project"],
            v=db.t["v100"],
            u=db.t["admin"],
            c=json.dumps(config),
        )
        with pytest.raises(
            RolloutFailed,
            match="fraud-api-production-eu .* failed: .*connection refused.*"
            "alpha/fraud/fraud-api-production \\(production\\) rolled back",
        ):
            self.promote()
        assert db.stages() == {"1.0.0": "production", "1.1.0": "staging", "1.2.0": "development"}
        assert db.deployment()["version"] == "1.0.0" and db.deployment()["status"] == "active"
        assert db.history()[-2:] == [("update", "1.1.0", "completed"), ("rollback", "1.0.0", "completed")]
        assert stub.split_puts()[-1] == {"1.0.0": 100}


def test_a_failed_manual_rollback_leaves_the_deployment_failed_and_alerts(db, stub):
    rollout(steps=[100])
    stub.unready = {"1.0.0"}
    with pytest.raises(RolloutFailed, match="rollback to 1.0.0 failed: health not reached"):
        rollback_deployment.fn(**PROD, reason="latency", actor=ADMIN)
    assert db.deployment()["status"] == "failed" and db.history()[-1] == ("rollback", "1.0.0", "failed")
    assert db.alerts() == [("high", "Rollback of 1.0.0 to alpha/fraud/fraud-api-production (production) failed")]
    assert db.audit()[-1] == "deployment.rollback.failed"
