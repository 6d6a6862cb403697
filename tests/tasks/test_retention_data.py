"""Retention of monitoring, rollups, soft-deleted rows, artifacts and notifications, on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from flows.retention import enforce_retention
from services.storage import open_store
from tests.factories import Db

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
HOUR = datetime(2026, 8, 10, 5, 0, tzinfo=UTC)  # 107 days before NOW: raw points there have expired


def run(as_of: datetime = NOW, **params) -> dict:
    summary = enforce_retention.fn(as_of=as_of, organization="alpha", **params)
    return summary["organizations"][0]


def counts(report: dict) -> dict[str, int]:
    return {c["category"]: c["count"] for c in report["categories"]}


@pytest.fixture
def alpha(tenants_db, tmp_path, monkeypatch):
    url, alpha, _ = tenants_db
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "artifacts").as_uri())
    db = Db(url)
    yield db, alpha
    db.close()


def insert(db: Db, sql: str, **params):
    """An INSERT ... RETURNING id, committed."""
    with db.engine.begin() as conn:
        return conn.execute(text(sql), params).scalar_one()


def points(db: Db, deployment, at: datetime, n: int, metric: str = "latency_ms") -> None:
    db.run(
        "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
        "SELECT :d, :m, g, CAST(:at AS timestamptz) + g * interval '1 minute' FROM generate_series(1, :n) g",
        d=deployment,
        m=metric,
        at=at,
        n=n,
    )


def rollup(db: Db, deployment, granularity: str, bucket: datetime, n: int, metric: str = "latency_ms") -> None:
    db.run(
        "INSERT INTO model_monitoring_rollups (deployment_id, metric_name, granularity, bucket_start, sample_count, "
        "value_sum, value_min, value_max, value_mean, p50, p95, p99) VALUES (:d, :m, :g, :b, :n, 1, 1, 1, 1, 1, 1, 1)",
        d=deployment,
        m=metric,
        g=granularity,
        b=bucket,
        n=n,
    )


class TestMonitoring:
    def test_raw_points_go_only_where_hourly_and_daily_rollups_are_complete(self, alpha):
        db, t = alpha
        dep = t["deployment_production"]
        day = HOUR.replace(hour=0)
        points(db, dep, HOUR, 3)  # complete: hourly count 3 + daily
        rollup(db, dep, "hour", HOUR, 3)
        points(db, dep, HOUR + timedelta(hours=1), 2)  # hourly rollup counted 1 of 2: incomplete
        rollup(db, dep, "hour", HOUR + timedelta(hours=1), 1)
        rollup(db, dep, "day", day, 5)
        points(db, dep, HOUR + timedelta(days=1), 2)  # hourly rollup but no daily one
        rollup(db, dep, "hour", HOUR + timedelta(days=1), 2)
        points(db, dep, NOW - timedelta(days=10), 4)  # young
        rollup(db, dep, "hour", NOW - timedelta(days=400), 1)  # rollups older than a year go
        rollup(db, dep, "day", (NOW - timedelta(days=400)).replace(hour=0), 1)
        db.run("DELETE FROM model_monitoring_invalidations")  # the aggregation has seen all of these
        points(db, dep, HOUR + timedelta(hours=2), 2)  # counted, but changed since: its invalidation is pending
        rollup(db, dep, "hour", HOUR + timedelta(hours=2), 2)
        before = db.one("SELECT count(*) FROM model_monitoring WHERE deployment_id = :d", d=dep)

        dry = run(dry_run=True)
        assert counts(dry)["monitoring_raw"] == 3 and counts(dry)["monitoring_rollups"] == 2
        assert next(c for c in dry["categories"] if c["category"] == "monitoring_raw")["held"] == 6

        report = run()
        assert counts(report)["monitoring_raw"] == 3 and counts(report)["monitoring_rollups"] == 2
        left = db.all("SELECT recorded_at FROM model_monitoring WHERE deployment_id = :d ORDER BY 1", d=dep)
        assert len(left) == before - 3
        assert not [r for r in left if HOUR <= r["recorded_at"] < HOUR + timedelta(hours=1)]
        assert (
            db.one("SELECT count(*) FROM model_monitoring_rollups WHERE bucket_start < :c", c=NOW - timedelta(days=365))
            == 0
        )
        assert (
            db.one("SELECT count(*) FROM model_monitoring_rollups WHERE deployment_id = :d", d=dep) == 6
        )  # 5 young ones + the factory's


class TestSoftDeletedAndArtifacts:
    def test_purges_after_grace_with_children_audited_and_artifacts_after_a_year(self, alpha):
        db, t = alpha
        store = open_store()
        db.run("UPDATE experiments SET deleted_at = :at WHERE id = :e", at=NOW - timedelta(days=40), e=t["experiment"])
        db.run(
            "UPDATE deployments SET deleted_at = :at WHERE id = :d",
            at=NOW - timedelta(days=10),
            d=t["deployment_staging"],
        )  # (within the grace period)
        # a second model, soft-deleted 40 days ago, whose one version's artifact is in the store
        store.put("models/alpha/churn/1.0.0/model.bin", b"weights")
        model = insert(
            db,
            "INSERT INTO models (organization_id, project_id, name, model_type, framework, created_by, deleted_at) "
            "VALUES (:o, :p, 'Churn', 'classification', 'xgboost', :u, :at) RETURNING id",
            o=t["org"],
            p=t["project"],
            u=t["admin"],
            at=NOW - timedelta(days=40),
        )
        version = insert(
            db,
            "INSERT INTO model_versions (model_id, version, stage, model_file_path, created_by) "
            "VALUES (:m, '1.0.0', 'staging', :uri, :u) RETURNING id",
            m=model,
            uri=store.uri_for("models/alpha/churn/1.0.0/model.bin"),
            u=t["admin"],
        )
        # an archived version of the live model, retired 400 days ago, but still in deployment history
        db.run("UPDATE model_versions SET stage = 'archived' WHERE id = :v", v=t["v120"])
        db.run(
            "INSERT INTO model_stage_transitions (organization_id, model_id, model_version_id, from_stage, to_stage, "
            "created_at) VALUES (:o, :m, :v, 'development', 'archived', :at)",
            o=t["org"],
            m=t["model"],
            v=t["v120"],
            at=NOW - timedelta(days=400),
        )
        db.run(
            "INSERT INTO deployment_history (deployment_id, model_version_id, action, status, performed_by) "
            "VALUES (:d, :v, 'rollback', 'completed', :u)",
            d=t["deployment_production"],
            v=t["v120"],
            u=t["admin"],
        )

        report = run()
        assert report["status"] == "ok", report["failures"]
        c = counts(report)
        assert (c["deleted_experiments"], c["deleted_deployments"], c["deleted_models"]) == (1, 0, 0)
        assert db.one("SELECT count(*) FROM experiments WHERE id = :e", e=t["experiment"]) == 0
        assert db.one("SELECT count(*) FROM experiment_runs WHERE id = :r", r=t["run"]) == 0
        assert db.one("SELECT count(*) FROM run_metrics WHERE id = :r", r=t["run_metric"]) == 0
        assert db.one("SELECT count(*) FROM deployments WHERE id = :d", d=t["deployment_staging"]) == 1
        purge = db.all("SELECT resource_id, details FROM audit_logs WHERE action = 'experiment.purge'")
        assert [r["resource_id"] for r in purge] == [t["experiment"]] and purge[0]["details"]["name"] == "tuning"
        assert c["model_artifacts"] == 0  # the history keeps 1.2.0; Churn retired only 40 days ago
        assert store.exists("models/alpha/churn/1.0.0/model.bin")
        assert next(x for x in report["categories"] if x["category"] == "deleted_models")["held"] == 1

        later = run(NOW + timedelta(days=330))  # Churn retired 370 days ago
        c = counts(later)
        assert c["model_artifacts"] == 1 and c["deleted_models"] == 1 and c["deleted_deployments"] == 1
        assert not store.exists("models/alpha/churn/1.0.0/model.bin")
        assert db.one("SELECT count(*) FROM models WHERE id = :m", m=model) == 0
        audited = db.all(
            "SELECT action, resource_id, details FROM audit_logs WHERE action IN "
            "('model_version.artifact_purge', 'model.purge', 'deployment.purge') ORDER BY action"
        )
        assert [(r["action"], r["resource_id"]) for r in audited] == [
            ("deployment.purge", t["deployment_staging"]),
            ("model.purge", model),
            ("model_version.artifact_purge", version),
        ]
        assert db.one("SELECT artifact_purged_at FROM model_versions WHERE id = :v", v=t["v120"]) is None
        assert store is not None

    def test_an_artifact_shared_with_a_live_version_stays(self, alpha):
        db, t = alpha
        store = open_store()
        store.put("models/shared.bin", b"w")
        uri = store.uri_for("models/shared.bin")
        db.run("UPDATE model_versions SET model_file_path = :u WHERE id IN (:a, :b)", u=uri, a=t["v120"], b=t["v110"])
        db.run("UPDATE model_versions SET deleted_at = :at WHERE id = :v", at=NOW - timedelta(days=500), v=t["v120"])
        report = run()
        assert counts(report)["model_artifacts"] == 0 and store.exists("models/shared.bin")
        db.run("UPDATE model_versions SET model_file_path = 's3://models/other' WHERE id = :v", v=t["v110"])
        assert counts(run())["model_artifacts"] == 1 and not store.exists("models/shared.bin")
        assert db.one("SELECT artifact_purged_at FROM model_versions WHERE id = :v", v=t["v120"]) is not None


class TestNotifications:
    def test_events_go_90_days_after_delivery(self, alpha):
        db, t = alpha
        old, young = NOW - timedelta(days=100), NOW - timedelta(days=10)
        ids = {}
        for name, dispatched in (("old", old), ("young", young), ("pending", None), ("retrying", old)):
            ids[name] = insert(
                db,
                "INSERT INTO notification_events (organization_id, trigger_type, event_type, dispatched_at) "
                "VALUES (:o, 'alert', :n, :at) RETURNING id",
                o=t["org"],
                n=name,
                at=dispatched,
            )
        second = insert(
            db,
            "INSERT INTO notification_channels (organization_id, name, type, configuration, created_by) "
            "VALUES (:o, 'second', 'webhook', '{}', :u) RETURNING id",
            o=t["org"],
            u=t["admin"],
        )
        db.run(
            "INSERT INTO notification_deliveries (organization_id, event_id, channel_id, status, updated_at) VALUES "
            "(:org, :o, :c1, 'delivered', :a), (:org, :o, :c2, 'dead', :a), (:org, :r, :c1, 'delivered', :a), "
            "(:org, :r, :c2, 'failed', :a)",
            org=t["org"],
            o=ids["old"],
            r=ids["retrying"],
            c1=t["channel"],
            c2=second,
            a=old,
        )
        report = run()
        left = {
            r["event_type"]
            for r in db.all(
                "SELECT event_type FROM notification_events WHERE organization_id = :o "
                "AND event_type IN ('old', 'young', 'pending', 'retrying')",
                o=t["org"],
            )
        }
        assert left == {"young", "pending", "retrying"}
        assert counts(report)["notification_deliveries"] == 3
        remaining = "SELECT count(*) FROM notification_deliveries WHERE event_id IN (:o, :r)"
        assert db.one(remaining, o=ids["old"], r=ids["retrying"]) == 1
