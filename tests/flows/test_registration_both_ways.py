"""Flow register-model-version run both ways (orchestrated, and direct as the CLI runs it): the same version,
artifact and events, and the same refusal of a worker's own file."""

from __future__ import annotations

import pytest

from core.errors import PermissionDenied
from flows.registration import register_model_version, upload_local_artifact
from tests.flows import test_registration as registration

db = registration.db  # a tenant database, MLOPS_HOME (the local artifact store) per test
PARAMS = dict(organization="alpha", project="fraud", model="Fraud Model", version="2.0.0")
ACTOR = "developer@alpha.example"


def test_a_version_is_registered_with_its_artifact_both_ways(db, tmp_path, flow_runner):
    uri = upload_local_artifact(registration.artifact(tmp_path, b"weights" * 100), actor=ACTOR, **PARAMS)
    result = flow_runner(register_model_version, **PARAMS, artifact=uri, actor=ACTOR, metrics={"auc": 0.97})
    assert result["status"] == "registered" and result["size_bytes"] == 700 and result["artifact_uri"] == uri
    row = db.all("SELECT stage, artifact_sha256, performance_metrics FROM model_versions WHERE version = '2.0.0'")[0]
    assert row["stage"] == "development" and row["artifact_sha256"] == result["sha256"]
    assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'model_version.registered'") == 1
    again = flow_runner(register_model_version, **PARAMS, artifact=uri, actor=ACTOR, metrics={"auc": 0.97})
    assert again["status"] == "unchanged"


def test_a_file_on_the_worker_is_refused_both_ways(db, tmp_path, flow_runner):
    with pytest.raises(PermissionDenied):
        flow_runner(register_model_version, **PARAMS, artifact=str(tmp_path / "model.bin"), actor=ACTOR)
    assert db.one("SELECT count(*) FROM model_versions WHERE version = '2.0.0'") == 0
