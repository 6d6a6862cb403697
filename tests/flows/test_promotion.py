"""Flow promote-model against a real database: transitions, gates, access, dry runs, forcing, concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.errors import Conflict, GateRejected, InvalidInput, NotFound, PermissionDenied
from flows.promotion import promote_model
from services import apikeys
from services.auth import resolve_principal
from services.history import production_at
from tasks.promotion.service import PromotionRequest, promote
from tests.factories import Db


class PromotionDb(Db):
    def stages(self) -> dict[str, str]:
        return {
            r["version"]: r["stage"]
            for r in self.all(
                "SELECT version, stage FROM model_versions v JOIN models m "
                "ON m.id = v.model_id WHERE m.name = 'Fraud Model' "
                "AND m.organization_id = (SELECT id FROM organizations WHERE slug = 'alpha')"
            )
        }

    def writes(self) -> tuple[int, int, int]:
        """(transitions, audit rows, events): what a refused or dry-run promotion must leave unchanged."""
        return (
            self.one("SELECT count(*) FROM model_stage_transitions"),
            self.one(
                "SELECT count(*) FROM audit_logs WHERE action NOT LIKE '%.denied' AND action NOT LIKE '%.rejected'"
            ),
            self.one("SELECT count(*) FROM notification_events"),
        )


@pytest.fixture
def db(tenants_db):
    url, alpha, beta = tenants_db
    database = PromotionDb(url)
    yield database
    database.close()


def request(version="1.1.0", to="production", **kwargs) -> PromotionRequest:
    return PromotionRequest(
        organization="alpha", project="fraud", model="Fraud Model", version=version, to_stage=to, **kwargs
    )


def who(email: str = "admin@alpha.example"):
    return resolve_principal(organization="alpha", as_email=email)


class TestTransitions:
    def test_promotion_to_production_archives_the_previous_one_atomically(self, db):
        outcome = promote(who(), request(reason="better auc"))
        assert outcome.status == "promoted" and outcome.archived_versions == ["1.0.0"]
        assert db.stages() == {"1.0.0": "archived", "1.1.0": "production", "1.2.0": "development"}
        moves = db.all(
            "SELECT v.version, t.from_stage, t.to_stage, t.reason, t.xmin::text AS tx FROM model_stage_transitions t "
            "JOIN model_versions v ON v.id = t.model_version_id WHERE t.from_stage IS NOT NULL"
        )
        assert {(m["version"], m["from_stage"], m["to_stage"]) for m in moves} == {
            ("1.0.0", "production", "archived"),
            ("1.1.0", "staging", "production"),
        }
        assert len({m["tx"] for m in moves}) == 1  # one transaction
        audit = db.all("SELECT details FROM audit_logs WHERE action = 'model_version.promote'")[0]["details"]
        assert audit["to_stage"] == "production" and {g["gate"] for g in audit["gates"]} >= {
            "champion_challenger",
            "drift",
        }
        event = db.all(
            "SELECT trigger_type, event_type, payload FROM notification_events WHERE trigger_type = 'model_update'"
        )
        assert event[0]["event_type"] == "model_version.promoted" and event[0]["payload"]["version"] == "1.1.0"

    def test_developer_promotes_to_staging(self, db):
        assert promote(who("developer@alpha.example"), request("1.2.0", "staging")).status == "promoted"
        assert db.stages()["1.2.0"] == "staging"

    def test_demotion_from_production_is_allowed_and_audited(self, db):
        outcome = promote(who(), request("1.0.0", "staging", reason="incident 42"))
        assert outcome.status == "demoted" and db.stages()["1.0.0"] == "staging"
        assert db.one("SELECT count(*) FROM audit_logs WHERE details->>'from_stage' = 'production'") == 1

    def test_archive(self, db):
        assert promote(who(), request("1.2.0", "archived")).status == "archived"
        assert db.stages()["1.2.0"] == "archived"

    def test_same_stage_is_a_no_op_that_writes_nothing(self, db):
        before = db.writes()
        assert promote(who(), request("1.1.0", "staging")).status == "noop"
        assert db.writes() == before

    @pytest.mark.parametrize(
        ("req", "error", "message"),
        [
            (request("1.2.0", "production"), InvalidInput, "promote to staging first"),
            (request("1.0", "staging"), InvalidInput, "malformed version"),
            (request("9.9.9", "staging"), NotFound, "has no version '9.9.9'"),
            (request(to="live"), InvalidInput, "unknown stage"),
            (PromotionRequest("alpha", "nope", "Fraud Model", "1.1.0", "production"), NotFound, "unknown project"),
            (PromotionRequest("alpha", "fraud", "Other", "1.1.0", "production"), NotFound, "unknown model"),
        ],
    )
    def test_bad_requests_fail_clearly_and_write_nothing(self, db, req, error, message):
        before = db.writes()
        with pytest.raises(error, match=message):
            promote(who(), req)
        assert db.writes() == before and db.stages()["1.1.0"] == "staging"

    def test_deleted_versions_and_models_are_not_found(self, db):
        db.run("UPDATE model_versions SET deleted_at = now() WHERE version = '1.2.0'")
        with pytest.raises(NotFound, match="has been deleted"):
            promote(who(), request("1.2.0", "staging"))
        db.run("UPDATE models SET deleted_at = now() WHERE name = 'Fraud Model'")
        with pytest.raises(NotFound, match="model 'Fraud Model' has been deleted"):
            promote(who(), request())

    def test_archived_versions_cannot_come_back(self, db):
        db.run("UPDATE model_versions SET stage = 'archived' WHERE version = '1.2.0'")
        with pytest.raises(InvalidInput, match="archived versions cannot be promoted"):
            promote(who(), request("1.2.0", "staging"))


class TestAccess:
    def test_viewer_is_refused_and_the_refusal_audited(self, db):
        before = db.writes()
        with pytest.raises(PermissionDenied, match="may not model.promote.staging"):
            promote(who("viewer@alpha.example"), request("1.2.0", "staging"))
        assert db.writes() == before
        denied = db.all("SELECT details FROM audit_logs WHERE action = 'model_version.promote.denied'")
        assert denied[0]["details"]["version"] == "1.2.0"

    def test_developer_cannot_touch_production(self, db):
        with pytest.raises(PermissionDenied):
            promote(who("developer@alpha.example"), request())
        with pytest.raises(PermissionDenied):
            promote(who("developer@alpha.example"), request("1.0.0", "archived"))

    def test_project_owner_may_promote_to_production(self, db, tenants_db):
        _, alpha, _ = tenants_db
        db.run("UPDATE project_members SET role = 'owner' WHERE user_id = :u", u=alpha["developer"])
        assert promote(who("developer@alpha.example"), request()).status == "promoted"

    def test_api_key_scope_for_the_target_stage(self, db):
        _, info = None, None
        plaintext, info = apikeys.create_key(
            who(), user_email="admin@alpha.example", name="ci", scopes=["models:promote:staging"]
        )
        ci = resolve_principal(organization="alpha", api_key=plaintext)
        assert promote(ci, request("1.2.0", "staging")).status == "promoted"
        with pytest.raises(PermissionDenied, match="lacks scope 'models:promote:production'"):
            promote(ci, request())
        row = db.all("SELECT api_key_id, actor_user_id FROM model_stage_transitions WHERE api_key_id IS NOT NULL")
        assert row[0]["api_key_id"] == info.id


class TestPermissionBeforeLocks:
    def test_an_unauthorised_caller_is_refused_before_waiting_for_the_model_lock(self, db, tenants_db):
        _, alpha, _ = tenants_db
        import time

        with db.engine.connect() as holder:  # another transaction holds the model row, as a promotion would
            holder.execute(text("SELECT 1 FROM models WHERE id = :m FOR UPDATE"), {"m": alpha["model"]})
            started = time.monotonic()
            with pytest.raises(PermissionDenied, match="may not model.promote.staging"):
                promote(who("viewer@alpha.example"), request("1.2.0", "staging"))
            assert time.monotonic() - started < 5  # refused at once, not after the 15 s lock timeout
            holder.rollback()

    def test_an_unauthorised_caller_does_not_learn_what_exists(self, db):
        with pytest.raises(PermissionDenied):
            promote(
                who("viewer@alpha.example"),
                PromotionRequest(
                    organization="alpha", project="no-such-project", model="Nope", version="9.9.9", to_stage="staging"
                ),
            )

    def test_the_model_lock_does_not_block_registering_a_version(self, db, tenants_db):
        _, alpha, _ = tenants_db
        from db.queries import registry as q
        from db.session import session_scope

        with session_scope(alpha["org"]) as session:
            q.model_by_name(session=session, project_id=alpha["project"], name="Fraud Model", lock=True)
            with db.engine.begin() as other:  # a concurrent registration's insert references the model
                other.execute(text("SET LOCAL lock_timeout = '2s'"))
                other.execute(
                    text(
                        "INSERT INTO model_versions (model_id, version, stage, model_file_path, created_by) "
                        "VALUES (:m, '3.0.0', 'development', 'x', :u)"
                    ),
                    {"m": alpha["model"], "u": alpha["admin"]},
                )
        assert db.one("SELECT count(*) FROM model_versions WHERE version = '3.0.0'") == 1


class TestEvidence:
    def test_no_drift_report_is_no_evidence(self, db):
        db.run("DELETE FROM data_drift_reports")
        with pytest.raises(
            GateRejected, match=r"drift: no evidence: no drift report for staging deployment fraud-api-staging"
        ):
            promote(who(), request())

    def test_a_stale_drift_report_is_no_evidence(self, db):
        db.run(
            "UPDATE data_drift_reports SET period_start = now() - interval '31 hours', period_end = now() - interval '30 hours'"
        )
        with pytest.raises(GateRejected, match=r"ended 30.0 h ago, older than 24 h"):
            promote(who(), request())
        db.run('UPDATE projects SET settings = \'{"promotion": {"max_drift_report_age_hours": 48}}\'')
        assert promote(who(), request()).status == "promoted"

    def test_an_incomplete_drift_report_never_passes(self, db):
        db.run(
            'UPDATE data_drift_reports SET report_data = \'{"status": "incomplete", "errors": {"amount": "all NaN"}}\''
        )
        with pytest.raises(GateRejected, match=r"is incomplete \(untested: amount\)"):
            promote(who(), request())

    def test_no_staging_deployment_is_no_evidence_unless_the_policy_says_so(self, db, tenants_db):
        _, alpha, _ = tenants_db
        db.run("UPDATE deployments SET deleted_at = now() WHERE id = :d", d=alpha["deployment_staging"])
        with pytest.raises(GateRejected) as rejected:
            promote(who(), request())
        assert {f.split(":")[0] for f in rejected.value.failures} == {"open_alerts", "drift"}
        assert all("no staging deployment serves it" in f for f in rejected.value.failures)
        db.run('UPDATE projects SET settings = \'{"promotion": {"require_staging_deployment": false}}\'')
        outcome = promote(who(), request())
        assert outcome.status == "promoted"
        assert all(
            "require_staging_deployment: false" in g["detail"]
            for g in outcome.gates
            if g["gate"] in ("open_alerts", "drift")
        )


class TestGates:
    def test_worse_challenger_is_rejected_with_every_failed_gate(self, db, tenants_db):
        _, alpha, _ = tenants_db
        db.run("UPDATE model_versions SET performance_metrics = '{\"accuracy\": 0.90}' WHERE version = '1.1.0'")
        db.run(
            "INSERT INTO alerts (organization_id, deployment_id, alert_type, severity, title, message) "
            "VALUES (:o, :d, 'error_rate', 'critical', 'errors spiking', 'x')",
            o=alpha["org"],
            d=alpha["deployment_staging"],
        )
        before = db.writes()
        with pytest.raises(GateRejected) as rejected:
            promote(who(), request())
        failed = {f.split(":")[0] for f in rejected.value.failures}
        assert failed == {"champion_challenger", "open_alerts"}
        assert len(rejected.value.gates) == 5
        assert db.writes() == before and db.stages()["1.0.0"] == "production"
        audit = db.all("SELECT details FROM audit_logs WHERE action = 'model_version.promote.rejected'")[0]["details"]
        assert len(audit["failed_gates"]) == 2

    def test_recent_staging_entry_fails_the_soak_gate(self, db):
        db.run("UPDATE model_stage_transitions SET created_at = now() - interval '2 hours' WHERE to_stage = 'staging'")
        with pytest.raises(GateRejected, match=r"staging_soak: 2.0 h in staging, needs 24 h"):
            promote(who(), request())

    def test_drift_on_its_staging_deployment_blocks_production(self, db):
        db.run("UPDATE data_drift_reports SET is_drift_detected = true, drift_score = 0.5")
        with pytest.raises(GateRejected, match="detected drift"):
            promote(who(), request())

    def test_model_policy_is_honoured(self, db):
        db.run('UPDATE models SET metadata = \'{"promotion": {"primary_metric": "auc", "min_absolute_change": 0.05}}\'')
        with pytest.raises(GateRejected, match="by more than 0.05"):
            promote(who(), request())

    def test_dry_run_reports_and_writes_nothing(self, db):
        db.run("UPDATE data_drift_reports SET is_drift_detected = true")
        before = db.writes()
        outcome = promote(who(), request(dry_run=True))
        assert outcome.status == "dry_run" and not outcome.passed
        assert db.writes() == before and db.stages()["1.1.0"] == "staging"
        assert db.one("SELECT count(*) FROM audit_logs WHERE action LIKE 'model_version.promote%'") == 0

    def test_forced_promotion_needs_an_admin_and_a_reason_and_is_recorded_as_forced(self, db):
        db.run("UPDATE data_drift_reports SET is_drift_detected = true")
        with pytest.raises(InvalidInput, match="needs a --reason"):
            promote(who(), request(force=True))
        db.run("UPDATE project_members SET role = 'owner'")
        with pytest.raises(PermissionDenied, match="forcing"):
            promote(who("developer@alpha.example"), request(force=True, reason="hotfix"))
        outcome = promote(who(), request(force=True, reason="hotfix for incident 7"))
        assert outcome.status == "promoted" and outcome.forced and not outcome.passed
        row = db.all(
            "SELECT forced, reason, gate_results FROM model_stage_transitions WHERE to_stage = 'production' "
            "AND from_stage = 'staging'"
        )[0]
        assert row["forced"] and row["reason"] == "hotfix for incident 7"
        assert any(not g["passed"] for g in row["gate_results"])
        assert db.one("SELECT details->>'forced' FROM audit_logs WHERE action = 'model_version.promote'") == "true"


class TestHistory:
    def test_which_version_was_in_production_when(self, db):
        before = datetime.now(UTC)
        promote(who(), request())
        assert production_at(who(), project="fraud", model="Fraud Model", at=before)["version"] == "1.0.0"
        assert production_at(who(), project="fraud", model="Fraud Model", at=datetime.now(UTC))["version"] == "1.1.0"
        assert production_at(who(), project="fraud", model="Fraud Model", at=before - timedelta(days=30)) is None


class TestConcurrency:
    def test_fifty_concurrent_promotions_leave_exactly_one_production_version(self, db, tenants_db):
        _, alpha, _ = tenants_db
        versions = [f"2.0.{i}" for i in range(50)]
        db.run(
            "UPDATE projects SET settings = jsonb_set(coalesce(settings, '{}'), '{promotion}', "
            "coalesce(settings->'promotion', '{}') || '{\"require_staging_deployment\": false}') "
            "WHERE id = :p",
            p=alpha["project"],
        )  # no staging deployment serves these versions: said so
        for v in versions:
            db.run(
                "WITH v AS (INSERT INTO model_versions (model_id, version, stage, model_file_path, performance_metrics,"
                " created_by) VALUES (:m, :v, 'staging', 'x', '{\"accuracy\": 0.95}', :u) RETURNING id, model_id) "
                "INSERT INTO model_stage_transitions (organization_id, model_id, model_version_id, from_stage, to_stage, "
                "created_at) SELECT :o, model_id, id, 'development', 'staging', now() - interval '2 days' FROM v",
                m=alpha["model"],
                v=v,
                u=alpha["admin"],
                o=alpha["org"],
            )
        admin = who()

        def attempt(version: str) -> str:
            try:
                return promote(admin, request(version)).status
            except Conflict:
                return "conflict"

        with ThreadPoolExecutor(50) as pool_:
            outcomes = list(pool_.map(attempt, versions))
        assert set(outcomes) <= {"promoted", "conflict"} and "promoted" in outcomes
        assert (
            db.one("SELECT count(*) FROM model_versions WHERE stage = 'production' AND model_id = :m", m=alpha["model"])
            == 1
        )
        winners = outcomes.count("promoted")
        # every success archived its predecessor: one production move and one archive per success
        assert (
            db.one(
                "SELECT count(*) FROM model_stage_transitions WHERE to_stage = 'production' "
                "AND from_stage = 'staging' AND model_id = :m",
                m=alpha["model"],
            )
            == winners
        )
        assert (
            db.one("SELECT count(*) FROM model_versions WHERE stage = 'archived' AND model_id = :m", m=alpha["model"])
            == winners
        )
        last = db.one(
            "SELECT v.version FROM model_versions v WHERE stage = 'production' AND model_id = :m", m=alpha["model"]
        )
        history = production_at(admin, project="fraud", model="Fraud Model", at=datetime.now(UTC))
        assert history["version"] == last


class TestFlow:
    def test_flow_run_promotes_and_publishes_its_decision(self, db, prefect_harness, tmp_path, monkeypatch):
        from services.storage import open_store

        monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "store").as_uri())
        info = open_store().put("models/alpha/1.1.0/model.bin", b"model 1.1.0")
        db.run(
            "UPDATE model_versions SET model_file_path = :p, model_size_bytes = :s WHERE version = '1.1.0'",
            p=open_store().uri_for(info.key),
            s=info.size,
        )
        result = promote_model(
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="1.1.0",
            to_stage="production",
            reason="ci",
            actor="admin@alpha.example",
        )
        assert result["status"] == "promoted" and result["rollout"] == (
            "rolled out to 1 deployment(s): alpha/fraud/fraud-api-production (production)"
        )
        assert db.stages()["1.1.0"] == "production"
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["promotion-fraud-model-1-1-0"]))
            )
        assert artifacts and "champion_challenger" in artifacts[0].data

    def test_rejected_promotion_fails_the_flow_run(self, db, prefect_harness):
        db.run("UPDATE data_drift_reports SET is_drift_detected = true")
        state = promote_model(
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="1.1.0",
            to_stage="production",
            actor="admin@alpha.example",
            return_state=True,
        )
        assert state.is_failed() and state.message.startswith("GateRejected: ")
        with pytest.raises(GateRejected):
            state.result()
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["promotion-fraud-model-1-1-0"]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
                )
            )
        assert "staging → production" in artifact.data and "?" not in artifact.data.split("\n")[0]

    def test_no_rollout_parameter(self, db, prefect_harness):
        result = promote_model.fn(
            organization="alpha",
            project="fraud",
            model="Fraud Model",
            version="1.1.0",
            to_stage="production",
            rollout=False,
            actor="admin@alpha.example",
        )
        assert result["rollout"] == "skipped (rollout disabled)"
