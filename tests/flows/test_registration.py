"""Flow register-model-version: the artifact in the store, the version in development, audit and event."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from flows.registration import register_model_version, upload_local_artifact
from flows.runtime import run_flow
from services.storage import open_store, resolve
from tests.factories import Db


@pytest.fixture
def db(tenants_db, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    database = Db(tenants_db[0])
    yield database
    database.close()


def artifact(tmp_path, content: bytes, name: str = "model.bin") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def register(
    path: str, version: str = "2.0.0", model: str = "Fraud Model", actor: str = "developer@alpha.example", **kw
):
    """As `mlops register` does: a local file is uploaded first, then the flow runs with its store URI."""
    params = dict(organization="alpha", project="fraud", model=model, version=version, **kw)
    uri = upload_local_artifact(path, actor=actor, **params)
    return run_flow(register_model_version, orchestrate=False, artifact=uri, actor=actor, **params)


def flow_run(uri: str, actor: str = "developer@alpha.example", **kw):
    """What a deployment run may do: call the flow with any `artifact` parameter."""
    return run_flow(
        register_model_version,
        orchestrate=False,
        organization="alpha",
        project="fraud",
        model="Fraud Model",
        version="2.0.0",
        artifact=uri,
        actor=actor,
        **kw,
    )


class TestRegister:
    def test_version_artifact_audit_and_event(self, db, tmp_path):
        content = b"trained weights " * 1000
        result = register(
            artifact(tmp_path, content),
            metrics={"auc": 0.97},
            model_schema={"inputs": []},
            requirements="xgboost==2.1.4\n",
        )
        assert result["status"] == "registered" and result["sha256"] == hashlib.sha256(content).hexdigest()
        row = db.all(
            "SELECT stage, model_file_path, model_size_bytes, artifact_sha256, performance_metrics, requirements "
            "FROM model_versions WHERE version = '2.0.0'"
        )[0]
        assert row["stage"] == "development" and row["model_size_bytes"] == len(content)
        assert row["artifact_sha256"] == result["sha256"] and row["performance_metrics"] == {"auc": 0.97}
        store, key = resolve(row["model_file_path"])
        assert store.get(key) == content and store.stat(key).sha256 == result["sha256"]
        assert (
            db.one(
                "SELECT to_stage FROM model_stage_transitions t JOIN model_versions v ON v.id = t.model_version_id "
                "WHERE v.version = '2.0.0'"
            )
            == "development"
        )
        assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'model_version.register'") == 1
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'model_version.registered'") == 1

    def test_same_artifact_again_is_a_no_op_and_a_different_one_a_conflict(self, db, tmp_path):
        path = artifact(tmp_path, b"v2")
        register(path)
        assert register(path)["status"] == "unchanged"
        with pytest.raises(Conflict, match="different artifact"):
            register(artifact(tmp_path, b"v2 but retrained", "other.bin"))
        assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'model_version.register'") == 1

    def test_new_model_needs_type_and_framework_and_counts_against_the_plan(self, db, tmp_path):
        path = artifact(tmp_path, b"churn")
        with pytest.raises(InvalidInput, match="give --model-type and --framework"):
            register(path, version="1.0.0", model="Churn Model")
        created = register(
            path, version="1.0.0", model="Churn Model", model_type="classification", framework="lightgbm"
        )
        assert created["model_created"]
        assert db.one("SELECT framework FROM models WHERE name = 'Churn Model'") == "lightgbm"
        db.run("UPDATE organizations SET max_models = 2 WHERE slug = 'alpha'")
        with pytest.raises(Conflict, match="limit of 2 models"):
            register(path, version="1.0.0", model="Third Model", model_type="regression", framework="sklearn")
        assert db.one("SELECT count(*) FROM models WHERE name = 'Third Model'") == 0
        assert not any("third-model" in o.key for o in open_store().list("models/"))

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({"version": "2.0"}, InvalidInput, "malformed version"),
            ({"metrics": {"auc": "high"}}, InvalidInput, "'auc' must be a finite number"),
            ({"actor": "viewer@alpha.example"}, PermissionDenied, "may not model.register"),
            ({"model": "Gone"}, NotFound, "has been deleted"),
        ],
    )
    def test_bad_requests_write_nothing(self, db, tmp_path, kwargs, error, message):
        db.run(
            "INSERT INTO models (organization_id, project_id, name, model_type, framework, created_by, deleted_at) "
            "SELECT organization_id, project_id, 'Gone', 'x', 'y', created_by, now() FROM models LIMIT 1"
        )
        with pytest.raises(error, match=message):
            register(artifact(tmp_path, b"x"), **kwargs)
        assert db.one("SELECT count(*) FROM model_versions WHERE version IN ('2.0.0', '2.0')") == 0
        assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'model_version.register'") == 0

    def test_missing_artifact_file(self, db, tmp_path):
        with pytest.raises(InvalidInput, match="not a readable file"):
            register(str(tmp_path / "nope.bin"))

    def test_concurrent_registrations_of_one_version_leave_one_consistent_winner(self, db, tmp_path):
        paths = [artifact(tmp_path, f"candidate {i}".encode(), f"m{i}.bin") for i in range(6)]

        def attempt(path: str) -> str:
            try:
                return register(path)["status"]
            except Conflict:
                return "conflict"

        with ThreadPoolExecutor(6) as pool_:
            outcomes = list(pool_.map(attempt, paths))
        assert outcomes.count("registered") == 1 and outcomes.count("conflict") == 5
        row = db.all("SELECT model_file_path, artifact_sha256 FROM model_versions WHERE version = '2.0.0'")[0]
        store, key = resolve(row["model_file_path"])
        assert hashlib.sha256(store.get(key)).hexdigest() == row["artifact_sha256"]


def test_registration_to_a_real_s3_endpoint(tenants_db, s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", f"s3://{s3_env.bucket}/r-{uuid.uuid4().hex[:8]}")
    result = register(artifact(tmp_path, b"weights on s3"))
    assert result["artifact_uri"].startswith(f"s3://{s3_env.bucket}/")
    store, key = resolve(result["artifact_uri"])
    assert store.get(key) == b"weights on s3" and store.stat(key).sha256 == result["sha256"]


class TestFlowParametersAreUntrusted:
    """A deployment run's `artifact` is whatever its caller typed: only the organization's part of the store."""

    def refused(self, db, uri: str, match: str) -> None:
        denied = "SELECT count(*) FROM audit_logs WHERE action = 'model_version.register.denied'"
        before = db.one(denied)
        with pytest.raises(PermissionDenied, match=match):
            flow_run(uri)
        assert db.one("SELECT count(*) FROM model_versions WHERE version = '2.0.0'") == 0
        assert db.one(denied) == before + 1
        assert list(open_store().list("models/alpha/")) == []

    def test_a_worker_file_is_refused_and_audited(self, db, tmp_path):
        secret = tmp_path / "environ"
        secret.write_bytes(b"DATABASE_URL=postgresql://owner:secret@db/mlops")
        self.refused(db, str(secret), "is a local path")

    def test_a_file_uri_outside_the_store_is_refused(self, db, tmp_path):
        secret = tmp_path / "environ"
        secret.write_bytes(b"MLOPS_SECRET_KEY=...")
        self.refused(db, secret.as_uri(), "outside organization 'alpha'")

    def test_another_organizations_object_in_the_store_is_refused(self, db):
        store = open_store()
        store.put("models/beta/fraud/fraud-model/1.0.0/abc/model.bin", b"beta's weights")
        self.refused(db, store.uri_for("models/beta/fraud/fraud-model/1.0.0/abc/model.bin"), "outside organization")
        dotted = store.uri_for("models/alpha") + "/../beta/fraud/fraud-model/1.0.0/abc/model.bin"
        self.refused(db, dotted, "outside organization")

    def test_another_bucket_is_refused(self, db):
        self.refused(db, "s3://someone-elses-bucket/models/alpha/model.bin", "outside organization")

    def test_an_upload_in_the_organizations_area_registers(self, db):
        store = open_store()
        store.put("uploads/alpha/ci-42/model.bin", b"uploaded by CI")
        result = flow_run(store.uri_for("uploads/alpha/ci-42/model.bin"))
        assert result["status"] == "registered"
        assert result["sha256"] == hashlib.sha256(b"uploaded by CI").hexdigest()

    def test_the_cli_uploads_a_local_file_before_the_flow_runs(self, db, tmp_path):
        uri = upload_local_artifact(
            artifact(tmp_path, b"local weights"),
            actor="developer@alpha.example",
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="2.0.0",
        )
        store, key = resolve(uri)
        assert key.startswith("models/alpha/fraud/fraud-model/2.0.0/") and store.get(key) == b"local weights"
        assert flow_run(uri)["status"] == "registered"
