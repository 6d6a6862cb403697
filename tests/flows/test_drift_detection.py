"""Flow detect-drift against a real database and real artifact stores (local and S3)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInput, NotFound, PartialFailure, PermissionDenied
from flows.drift_detection import detect_drift
from flows.runtime import run_flow
from services.storage import open_store
from tasks.drift.rules import alert_severity, drift_config, drift_window, explicit_window
from tests.factories import Db

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.5 + shift, 1.0, n),
            "age": rng.normal(40, 10, n),
            "merchant": rng.choice(
                ["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1] if not shift else [0.1, 0.2, 0.3, 0.4]
            ),
            "channel": rng.choice(["web", "pos"], n),
        }
    )


def put_parquet(store, key: str, data: pd.DataFrame) -> str:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    store.put(key, buffer.getvalue())
    return store.uri_for(key)


def log_inputs(store, prefix: str, data: pd.DataFrame, start=START, end=END, name="part-0.parquet") -> None:
    stamps = pd.date_range(start, end, periods=len(data) + 1, inclusive="left")
    put_parquet(store, f"{prefix}/date={start:%Y-%m-%d}/{name}", data.assign(timestamp=stamps))


def configure(db: Db, deployment_id: uuid.UUID, **drift) -> None:
    db.run(
        "UPDATE deployments SET deployment_config = CAST(:c AS jsonb) WHERE id = :d",
        c=json.dumps({"monitoring": {"drift": drift}}),
        d=deployment_id,
    )


@pytest.fixture
def setup(tenants_db, tmp_path, monkeypatch):
    """alpha's production deployment drifts, its staging one does not; beta has no drift configured."""
    url, alpha, beta = tenants_db
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    db = Db(url)
    store = open_store()
    reference = put_parquet(store, "datasets/alpha/reference.parquet", frame(3000, 1))
    for env, shift in (("production", 0.8), ("staging", 0.0)):
        prefix = f"inference-logs/alpha/{env}"
        log_inputs(store, prefix, frame(1200, 2 if env == "production" else 3, shift))
        configure(
            db,
            alpha[f"deployment_{env}"],
            reference_uri=reference,
            inputs_uri=store.uri_for(prefix),
            column_types={"channel": "cat"},
        )
    db.run("DELETE FROM data_drift_reports")
    yield db, store, alpha, beta
    db.close()


def run(**params):
    return run_flow(detect_drift, orchestrate=False, organization="alpha", start=START, end=END, **params)


def run_failing(**params):
    """A run where a deployment fails: the others are analysed, then the run fails carrying its summary."""
    with pytest.raises(PartialFailure) as caught:
        run(**params)
    return caught.value.summary


class TestReports:
    def test_each_deployment_gets_a_report_of_its_window(self, setup):
        db, store, alpha, _ = setup
        summary = run()
        assert summary["deployments"] == 2 and summary["failed"] == 0 and summary["drift_detected"] == 1
        reports = {r["deployment_id"]: r for r in db.all("SELECT * FROM data_drift_reports")}
        prod, staging = reports[alpha["deployment_production"]], reports[alpha["deployment_staging"]]
        assert prod["is_drift_detected"] and not staging["is_drift_detected"]
        assert (prod["period_start"], prod["period_end"]) == (START, END)
        drifted = {c for c, r in prod["feature_drift"].items() if r["drifted"]}
        assert {"amount", "merchant"} <= drifted
        assert prod["drift_score"] == pytest.approx(len(drifted) / 4)
        assert prod["feature_drift"]["amount"]["method"] == "wasserstein"
        assert prod["feature_drift"]["merchant"]["method"] == "jensenshannon"
        assert prod["report_data"]["rows"] == {"reference": 3000, "current": 1200}
        assert prod["drift_threshold"] == 0.1

    def test_html_report_is_stored_and_linked(self, setup):
        db, store, alpha, _ = setup
        run()
        report = db.all(
            "SELECT report_data FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_production"]
        )[0]
        uri = report["report_data"]["report_uri"]
        from services.storage import resolve

        page_store, key = resolve(uri)
        page = page_store.get(key).decode()
        assert "<svg" in page and "amount" in page and "<script src" not in page and "https://" not in page

    def test_rerun_for_the_same_window_updates_the_same_report(self, setup):
        db, store, alpha, _ = setup
        assert {o["change"] for o in run()["outcomes"]} == {"new"}
        first = db.one("SELECT id FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_production"])
        # the same inputs again: the same result, and the run says so
        again = {o["deployment"]: o for o in run()["outcomes"]}
        assert {o["change"] for o in again.values()} == {"unchanged"}
        assert all(o["message"].endswith("(unchanged: this window was reported before)") for o in again.values())
        log_inputs(
            store, "inference-logs/alpha/production", frame(600, 9, 0.8), name="part-1.parquet"
        )  # late-arriving logs
        run()
        rows = db.all(
            "SELECT id, report_data FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_production"]
        )
        assert len(rows) == 1 and rows[0]["id"] == first and rows[0]["report_data"]["rows"]["current"] == 1800
        audit = db.all(
            "SELECT details->>'change' AS change FROM audit_logs WHERE action = 'data_drift_report.write' "
            "AND resource_id = :r ORDER BY created_at",
            r=first,
        )
        assert [a["change"] for a in audit] == ["new", "unchanged", "updated"]

    def test_per_column_method_and_threshold_and_dataset_threshold_from_configuration(self, setup):
        db, store, alpha, _ = setup
        config = db.one("SELECT deployment_config FROM deployments WHERE id = :d", d=alpha["deployment_staging"])
        drift = config["monitoring"]["drift"]
        configure(
            db,
            alpha["deployment_staging"],
            **drift,
            drift_threshold=0.2,
            per_column={"amount": {"method": "psi", "threshold": 0.0}},
        )
        run()
        report = db.all("SELECT * FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_staging"])[0]
        assert report["feature_drift"]["amount"]["method"] == "psi" and report["feature_drift"]["amount"]["drifted"]
        assert report["drift_threshold"] == 0.2 and report["drift_score"] == 0.25 and report["is_drift_detected"]


class TestAlerts:
    def test_drift_raises_one_alert_and_one_event_updated_while_open(self, setup):
        db, store, alpha, _ = setup
        run()
        alerts = db.all("SELECT id, severity, title, status FROM alerts WHERE alert_type = 'data_drift'")
        assert len(alerts) == 1 and alerts[0]["severity"] == alert_severity(0.5, 0.1)
        events = db.all(
            "SELECT trigger_type, severity, payload FROM notification_events WHERE event_type = 'data_drift.detected'"
        )
        assert len(events) == 1 and events[0]["trigger_type"] == "alert"
        assert set(events[0]["payload"]["drifted_columns"]) >= {"amount", "merchant"}
        run()  # same window again: no second alert, no second event
        assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'data_drift'") == 1
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'data_drift.detected'") == 1
        later_start, later_end = START + timedelta(hours=1), END + timedelta(hours=1)
        log_inputs(
            store,
            "inference-logs/alpha/production",
            frame(1200, 5, 0.8),
            start=later_start,
            end=later_end,
            name="p2.parquet",
        )
        run_flow(detect_drift, orchestrate=False, organization="alpha", start=later_start, end=later_end)
        assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'data_drift'") == 1  # updated, not duplicated
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'data_drift.detected'") == 2
        db.run("UPDATE alerts SET status = 'resolved' WHERE alert_type = 'data_drift'")
        run()  # drift again after a human resolved it: a new alert
        assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'data_drift' AND status = 'open'") == 1

    def test_report_and_audit_are_written_as_the_system(self, setup):
        db, _, _, _ = setup
        run()
        rows = db.all("SELECT user_id, details FROM audit_logs WHERE action = 'data_drift_report.write'")
        assert len(rows) == 2 and all(r["user_id"] is None and r["details"]["actor"] == "system" for r in rows)


class TestFaults:
    def test_missing_reference_fails_that_deployment_only_and_writes_nothing_for_it(self, setup):
        db, store, alpha, _ = setup
        config = db.one("SELECT deployment_config FROM deployments WHERE id = :d", d=alpha["deployment_production"])
        configure(
            db,
            alpha["deployment_production"],
            **{**config["monitoring"]["drift"], "reference_uri": store.uri_for("datasets/alpha/nope.parquet")},
        )
        summary = run_failing()
        failed = [o for o in summary["outcomes"] if o["status"] == "failed"]
        assert (
            len(failed) == 1
            and "reference dataset" in failed[0]["message"]
            and "does not exist" in failed[0]["message"]
        )
        assert (
            db.one("SELECT count(*) FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_production"])
            == 0
        )
        assert (
            db.one("SELECT count(*) FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_staging"])
            == 1
        )
        assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'data_drift'") == 0

    def test_unreachable_store_is_retried_then_fails_that_deployment_only(self, setup, monkeypatch):
        db, store, alpha, _ = setup
        import tasks.drift.service as module
        import tasks.drift.tasks as drift_tasks
        from core.errors import TransientError

        config = db.one("SELECT deployment_config FROM deployments WHERE id = :d", d=alpha["deployment_production"])
        unreachable = put_parquet(store, "datasets/alpha/unreachable.parquet", frame(3000, 1))
        configure(db, alpha["deployment_production"], **{**config["monitoring"]["drift"], "reference_uri": unreachable})
        attempts = []
        real_read = module.read_uri

        def flaky(uri, columns=None):
            if uri == unreachable:
                attempts.append(uri)
                raise TransientError("artifact store unreachable")
            return real_read(uri, columns)

        monkeypatch.setattr(module, "read_uri", flaky)
        monkeypatch.setattr(drift_tasks.detect_deployment_drift, "retry_delay_seconds", [0])
        summary = run_failing()
        assert len(attempts) == 4  # the first try and three retries
        outcomes = {o["deployment"].split("/")[-1]: o for o in summary["outcomes"]}
        failed = outcomes["fraud-api-production (production)"]
        assert failed["status"] == "failed" and "gave up after retries: artifact store unreachable" in failed["message"]
        assert outcomes["fraud-api-staging (staging)"]["status"] == "reported"
        assert (
            db.one("SELECT count(*) FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_production"])
            == 0
        )

    def test_empty_window_is_skipped_with_a_clear_message(self, setup):
        db, _, _, _ = setup
        summary = run_flow(
            detect_drift,
            orchestrate=False,
            organization="alpha",
            start=START - timedelta(days=3),
            end=END - timedelta(days=3),
        )
        assert {o["status"] for o in summary["outcomes"]} == {"skipped"}
        assert all("no logged inputs" in o["message"] for o in summary["outcomes"])
        assert db.one("SELECT count(*) FROM data_drift_reports") == 0

    def test_unreadable_file_fails_clearly(self, setup):
        db, store, alpha, _ = setup
        store.put(f"inference-logs/alpha/staging/date={START:%Y-%m-%d}/broken.parquet", b"this is not parquet")
        summary = run_failing()
        (failed,) = [o for o in summary["outcomes"] if o["status"] == "failed"]
        assert "unreadable dataset" in failed["message"] and "broken.parquet" in failed["message"]
        assert db.one("SELECT count(*) FROM data_drift_reports") == 1

    def test_missing_column_and_all_nan_column_are_reported_per_column(self, setup):
        db, store, alpha, _ = setup
        data = frame(1200, 3).drop(columns=["channel"]).assign(age=np.nan)
        store.delete([f"inference-logs/alpha/staging/date={START:%Y-%m-%d}/part-0.parquet"])
        log_inputs(store, "inference-logs/alpha/staging", data)
        run()
        report = db.all(
            "SELECT feature_drift, report_data FROM data_drift_reports WHERE deployment_id = :d",
            d=alpha["deployment_staging"],
        )[0]
        assert "missing in current" in report["feature_drift"]["channel"]["error"]
        assert report["feature_drift"]["age"]["error"] and not report["feature_drift"]["age"]["drifted"]
        assert set(report["report_data"]["errors"]) == {"channel", "age"}
        assert report["report_data"]["status"] == "incomplete"

    def test_a_report_whose_columns_all_errored_is_incomplete_never_no_drift(self, setup):
        db, store, alpha, _ = setup
        store.delete([f"inference-logs/alpha/staging/date={START:%Y-%m-%d}/part-0.parquet"])
        log_inputs(
            store,
            "inference-logs/alpha/staging",
            frame(1200, 3).assign(amount=np.nan, age=np.nan).drop(columns=["merchant", "channel"]),
        )
        summary = run()
        (outcome,) = [o for o in summary["outcomes"] if o["deployment"].endswith("(staging)")]
        assert outcome["status"] == "incomplete" and "no drift" not in outcome["message"]
        assert outcome["message"].startswith("incomplete: 4 of 4 columns could not be tested")
        assert summary["incomplete"] == 1
        report = db.one(
            "SELECT report_data FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_staging"]
        )
        assert report["status"] == "incomplete"

    def test_identifier_and_text_columns_are_left_out_like_evidently_does(self, setup):
        db, store, alpha, _ = setup
        data = frame(1200, 3).assign(request_id=[f"req-{i}" for i in range(1200)])
        store.delete([f"inference-logs/alpha/staging/date={START:%Y-%m-%d}/part-0.parquet"])
        log_inputs(store, "inference-logs/alpha/staging", data)
        summary = run()
        assert summary["failed"] == 0
        features = db.one(
            "SELECT feature_drift FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_staging"]
        )
        assert "request_id" not in features and {"amount", "age", "merchant", "channel"} <= set(features)

    def test_malformed_configuration_fails_that_deployment(self, setup):
        db, _, alpha, _ = setup
        configure(
            db, alpha["deployment_staging"], reference_uri="x", inputs_uri="y", per_column={"a": {"method": "mean"}}
        )
        summary = run_failing()
        (failed,) = [o for o in summary["outcomes"] if o["status"] == "failed"]
        assert "per_column.a.method must be one of" in failed["message"]

    def test_inactive_organizations_are_skipped_and_said_so(self, setup):
        db, _, _, _ = setup
        db.run("UPDATE organizations SET subscription_status = 'suspended' WHERE slug = 'alpha'")
        summary = run_flow(detect_drift, orchestrate=False, start=START, end=END)
        assert summary["deployments"] == 0
        assert "skipped organization 'alpha': subscription is suspended" in summary["skipped_organizations"]


class TestTenantSuppliedUris:
    """`reference_uri`/`inputs_uri` come from the tenant's deployment configuration: only its own data."""

    def point_at(self, db, store, alpha, **uris):
        config = db.one("SELECT deployment_config FROM deployments WHERE id = :d", d=alpha["deployment_production"])
        configure(db, alpha["deployment_production"], **{**config["monitoring"]["drift"], **uris})

    def assert_refused(self, db, alpha, summary, key: str):
        outcomes = {o["deployment"].split("/")[-1]: o for o in summary["outcomes"]}
        refused = outcomes["fraud-api-production (production)"]
        assert refused["status"] == "failed" and refused["message"].startswith(f"monitoring.drift.{key}: ")
        assert "outside organization 'alpha'" in refused["message"] and "\n" not in refused["message"]
        assert outcomes["fraud-api-staging (staging)"]["status"] == "reported"
        assert (
            db.one("SELECT count(*) FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_production"])
            == 0
        )
        (audit,) = db.all("SELECT resource_id, details FROM audit_logs WHERE action = 'data_drift_report.read.denied'")
        assert audit["resource_id"] == alpha["deployment_production"] and key in audit["details"]["reason"]

    def test_another_organizations_reference_is_refused_and_audited(self, setup):
        db, store, alpha, _ = setup
        theirs = put_parquet(store, "datasets/beta/secret-reference.parquet", frame(3000, 7))
        self.assert_refused(db, alpha, run_with_failures(self, db, store, alpha, reference_uri=theirs), "reference_uri")

    def test_another_organizations_logged_inputs_are_refused(self, setup):
        db, store, alpha, _ = setup
        log_inputs(store, "inference-logs/beta/prod", frame(1200, 8))
        theirs = store.uri_for("inference-logs/beta/prod")
        self.assert_refused(db, alpha, run_with_failures(self, db, store, alpha, inputs_uri=theirs), "inputs_uri")

    def test_a_path_on_the_workers_disk_is_refused(self, setup, tmp_path):
        db, store, alpha, _ = setup
        local = tmp_path / "reference.parquet"
        frame(3000, 1).to_parquet(local)
        self.assert_refused(
            db, alpha, run_with_failures(self, db, store, alpha, reference_uri=str(local)), "reference_uri"
        )

    def test_tasks_get_the_drift_keys_only_never_the_whole_deployment_config(self, setup):
        db, _, alpha, _ = setup
        from tasks.drift.tasks import list_targets

        db.run(
            "UPDATE deployments SET deployment_config = deployment_config || "
            '\'{"serving": {"token": "s3cr3t-token"}}\'::jsonb WHERE id = :d',
            d=alpha["deployment_production"],
        )
        targets, _ = list_targets.fn("alpha", None, None)
        assert targets and all("s3cr3t" not in repr(t) for t in targets)
        assert all(set(t.drift) <= {"reference_uri", "inputs_uri", "column_types"} for t in targets)


def run_with_failures(case, db, store, alpha, **uris):
    case.point_at(db, store, alpha, **uris)
    return run_failing()


class TestWithAnApiKeyInTheWorkersEnvironment:
    """The README's worker set-up carries MLOPS_API_KEY (one organization's key, maybe without drift:run)."""

    @pytest.fixture
    def with_key(self, setup, monkeypatch):
        db, store, alpha, beta = setup
        from services import apikeys
        from services.auth import resolve_principal

        reference = put_parquet(store, "datasets/beta/reference.parquet", frame(3000, 1))
        log_inputs(store, "inference-logs/beta/prod", frame(1200, 4))
        configure(
            db,
            beta["deployment_production"],
            reference_uri=reference,
            inputs_uri=store.uri_for("inference-logs/beta/prod"),
        )
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")

        def key(*scopes: str) -> str:
            plaintext, _ = apikeys.create_key(
                admin, user_email="developer@alpha.example", name=f"k-{uuid.uuid4().hex[:6]}", scopes=list(scopes)
            )
            return plaintext

        monkeypatch.setenv("MLOPS_API_KEY", key("models:read"))
        return db, alpha, beta, key, monkeypatch

    def test_the_schedule_acts_as_the_system_for_every_organization(self, with_key):
        db, alpha, beta, _, _ = with_key
        summary = run_flow(detect_drift, orchestrate=False, start=START, end=END)  # as the schedule runs it
        assert summary["deployments"] == 3 and summary["failed"] == 0
        rows = db.all(
            "SELECT organization_id, user_id, api_key_id FROM audit_logs WHERE action = 'data_drift_report.write'"
        )
        assert {r["organization_id"] for r in rows} == {alpha["org"], beta["org"]}
        assert all(r["user_id"] is None and r["api_key_id"] is None for r in rows)

    def test_on_demand_acts_as_the_key_and_needs_drift_run(self, with_key):
        db, alpha, _, key, monkeypatch = with_key
        with pytest.raises(PermissionDenied, match="lacks scope 'drift:run'"):
            run(on_demand=True)
        assert db.one("SELECT count(*) FROM data_drift_reports") == 0
        monkeypatch.setenv("MLOPS_API_KEY", key("drift:run"))
        summary = run(on_demand=True)
        assert summary["deployments"] == 2
        rows = db.all("SELECT user_id, api_key_id FROM audit_logs WHERE action = 'data_drift_report.write'")
        assert len(rows) == 2 and all(r["user_id"] == alpha["developer"] and r["api_key_id"] for r in rows)


class TestSelectionAndAccess:
    def test_one_deployment(self, setup):
        db, _, _, _ = setup
        summary = run_flow(
            detect_drift,
            orchestrate=False,
            deployment="alpha/fraud/fraud-api-staging",
            environment="staging",
            start=START,
            end=END,
        )
        assert summary["deployments"] == 1 and db.one("SELECT count(*) FROM data_drift_reports") == 1

    @pytest.mark.parametrize(
        ("params", "error"),
        [
            ({"deployment": "alpha/fraud/nope", "environment": "staging"}, NotFound),
            ({"deployment": "alpha/fraud", "environment": "staging"}, InvalidInput),
            ({"deployment": "alpha/fraud/fraud-api-staging"}, InvalidInput),
            ({"organization": "gamma"}, NotFound),
        ],
    )
    def test_bad_selections(self, setup, params, error):
        with pytest.raises(error):
            run_flow(detect_drift, orchestrate=False, start=START, end=END, **params)

    def test_viewer_may_not_run_it_on_demand(self, setup):
        db, _, _, _ = setup
        with pytest.raises(PermissionDenied):
            run(actor="viewer@alpha.example")
        assert db.one("SELECT count(*) FROM data_drift_reports") == 0
        assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'data_drift_report.write.denied'") >= 1

    def test_developer_runs_it_on_demand_and_is_audited(self, setup):
        db, _, alpha, _ = setup
        run(actor="developer@alpha.example")
        assert (
            db.one(
                "SELECT count(*) FROM audit_logs WHERE action = 'data_drift_report.write' AND user_id = :u",
                u=alpha["developer"],
            )
            == 2
        )


class TestS3Backend:
    def test_drift_over_a_real_s3_endpoint(self, tenants_db, s3_env, monkeypatch, tmp_path):
        url, alpha, _ = tenants_db
        monkeypatch.setenv("MLOPS_ARTIFACT_URI", f"s3://{s3_env.bucket}/t-{uuid.uuid4().hex[:8]}")
        db = Db(url)
        store = open_store()
        reference = put_parquet(store, "datasets/alpha/reference.parquet", frame(3000, 1))
        log_inputs(store, "inference-logs/alpha/prod", frame(1200, 2, 0.8))
        configure(
            db,
            alpha["deployment_production"],
            reference_uri=reference,
            inputs_uri=store.uri_for("inference-logs/alpha/prod"),
        )
        summary = run_flow(
            detect_drift,
            orchestrate=False,
            deployment="alpha/fraud/fraud-api-production",
            environment="production",
            start=START,
            end=END,
        )
        (outcome,) = summary["outcomes"]
        assert outcome["drift_detected"] and outcome["report_uri"].startswith("s3://")
        assert db.one(
            "SELECT is_drift_detected FROM data_drift_reports WHERE deployment_id = :d",
            d=alpha["deployment_production"],
        )
        db.close()


class TestPrefectRun:
    def test_scheduled_run_publishes_a_table_per_deployment(self, setup, prefect_harness):
        db, _, _, _ = setup
        summary = detect_drift(organization="alpha", start=START, end=END)
        assert summary["deployments"] == 2
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            keys = {a.key for a in client.read_artifacts()}
        assert {"drift-alpha-fraud-fraud-api-production-production", "drift-summary"} <= keys


class TestFailedRunsAreLoud:
    def test_a_failed_deployment_fails_the_prefect_flow_run_after_the_others(self, setup, prefect_harness):
        db, store, alpha, _ = setup
        config = db.one("SELECT deployment_config FROM deployments WHERE id = :d", d=alpha["deployment_production"])
        configure(
            db,
            alpha["deployment_production"],
            **{**config["monitoring"]["drift"], "reference_uri": store.uri_for("datasets/alpha/gone.parquet")},
        )
        with pytest.raises(PartialFailure, match="1 of 2 deployment"):
            detect_drift(organization="alpha", start=START, end=END)
        assert (
            db.one("SELECT count(*) FROM data_drift_reports WHERE deployment_id = :d", d=alpha["deployment_staging"])
            == 1
        )
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.sorting import FlowRunSort

        with get_client(sync_client=True) as client:
            (latest,) = client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
        assert latest.state.is_failed()  # so Prefect notifies and `prefect deployment run --watch` exits non-zero


class TestPureRules:
    def test_window_is_the_interval_ending_at_the_scheduled_time(self):
        assert drift_window(datetime(2026, 11, 24, 10, 0, tzinfo=UTC), 60) == (
            datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        )
        late = drift_window(datetime(2026, 11, 24, 10, 7, 31, tzinfo=UTC), 60)
        assert late[1] == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a late start still analyses the same slot
        assert drift_window(datetime(2026, 11, 24, 10, 20, tzinfo=UTC), 15)[0] == datetime(
            2026, 11, 24, 10, 0, tzinfo=UTC
        )

    def test_explicit_window_checks(self):
        with pytest.raises(InvalidInput, match="both"):
            explicit_window(START, None)
        with pytest.raises(InvalidInput, match="empty"):
            explicit_window(END, START)
        assert explicit_window(datetime(2026, 1, 1), datetime(2026, 1, 2))[0].tzinfo is not None

    @pytest.mark.parametrize(("share", "severity"), [(0.6, "critical"), (0.3, "high"), (0.2, "medium"), (0.1, "low")])
    def test_severity_by_share(self, share, severity):
        assert alert_severity(share, 0.1) == severity

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            ({"inputs_uri": "x"}, "reference_uri is required"),
            ({"reference_uri": "r", "inputs_uri": "x", "drift_threshold": 2}, "between 0 and 1"),
            ({"reference_uri": "r", "inputs_uri": "x", "column_types": {"a": "text"}}, "must be 'num' or 'cat'"),
            ({"reference_uri": "r", "inputs_uri": "x", "interval_minutes": 0}, "interval_minutes"),
            ({"reference_uri": "r", "inputs_uri": "x", "colour": 1}, "unknown key"),
        ],
    )
    def test_malformed_configuration(self, config, message):
        with pytest.raises(InvalidInput, match=message):
            drift_config({"monitoring": {"drift": config}})

    def test_not_configured_or_disabled(self):
        assert drift_config({}) is None
        assert drift_config({"monitoring": {"drift": {"enabled": False}}}) is None
