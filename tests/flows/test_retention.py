"""Flow `enforce-retention` against a real PostgreSQL and real artifact stores (a local folder, rclone S3)."""

from __future__ import annotations

import io
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from core.errors import Conflict, InvalidInput, PermissionDenied
from flows.retention import enforce_retention
from services.storage import open_store
from tasks.retention.archives import restore_month
from tasks.retention.maintenance import run_lock
from tests.factories import Db

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 1, tzinfo=UTC)  # Sept and Oct 2024 are more than two years before NOW
AUDIT_COLUMNS = (
    "id, organization_id, user_id, api_key_id, action, resource_type, resource_id, details::text, "
    "ip_address::text, user_agent, created_at"
)


def seed_audit(db: Db, org: uuid.UUID, user: uuid.UUID, n: int, start: datetime = OLD, step_hours: int = 12) -> None:
    """Audit rows with awkward values: quotes, commas, newlines, empty strings, NULLs, IPv6, microseconds."""
    db.run(
        """
        INSERT INTO audit_logs (organization_id, user_id, action, resource_type, resource_id, details, ip_address,
                                user_agent, created_at)
        SELECT :o, CASE WHEN g % 4 = 0 THEN NULL ELSE CAST(:u AS uuid) END, 'model.update', 'model',
               CASE WHEN g % 5 = 0 THEN NULL ELSE gen_random_uuid() END,
               jsonb_build_object('i', g, 'note', E'a,"b"\\nc', 'empty', ''),
               CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN inet '10.1.2.3' ELSE inet '2001:db8::1/64' END,
               CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'NULL' END,
               CAST(:start AS timestamptz) + g * :step * interval '1 hour' + g * interval '1 microsecond'
        FROM generate_series(1, :n) g
        """,
        o=org,
        u=user,
        n=n,
        start=start,
        step=step_hours,
    )


def read_parquet(store, key: str):
    return pq.read_table(io.BytesIO(store.get(key)))


def audit_rows(db: Db, org: uuid.UUID, before: datetime) -> list[dict]:
    return [
        dict(r)
        for r in db.all(
            f"SELECT {AUDIT_COLUMNS} FROM audit_logs WHERE organization_id = :o AND created_at < :b ORDER BY id",
            o=org,
            b=before,
        )
    ]


@pytest.fixture
def local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", (tmp_path / "artifacts").as_uri())
    return open_store()


@pytest.fixture
def s3_store(s3_env, monkeypatch):
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", f"s3://{s3_env.bucket}/t{uuid.uuid4().hex[:8]}")
    return open_store()


def run(**params):
    return enforce_retention.fn(as_of=NOW, **params)


def org_report(summary: dict, slug: str) -> dict:
    return next(r for r in summary["organizations"] if r["organization"] == slug)


def counts(report: dict) -> dict[str, int]:
    return {c["category"]: c["count"] for c in report["categories"]}


class TestAuditArchive:
    @pytest.mark.parametrize("store_name", ["local_store", "s3_store"])
    def test_archives_verifies_deletes_and_restores_byte_for_byte(self, tenants_db, store_name, request):
        url, alpha, beta = tenants_db
        store = request.getfixturevalue(store_name)
        db = Db(url)
        seed_audit(db, alpha["org"], alpha["admin"], 100)  # 2024-09-01 .. 2024-10-21
        seed_audit(db, beta["org"], beta["admin"], 10)
        before = audit_rows(db, alpha["org"], NOW - timedelta(days=730))
        recent = db.one("SELECT count(*) FROM audit_logs WHERE organization_id = :o", o=alpha["org"]) - 100

        summary = run(batch_size=7)

        report = org_report(summary, "alpha")
        assert report["status"] == "ok", report
        audit = next(c for c in report["categories"] if c["category"] == "audit_logs")
        assert audit["count"] == 100
        assert audit["archive_keys"] == [
            "retention/audit_logs/alpha/2024-09.parquet",
            "retention/audit_logs/alpha/2024-10.parquet",
        ]
        assert audit_rows(db, alpha["org"], NOW - timedelta(days=730)) == []
        # younger rows and the other organization's archive are their own
        assert (
            db.one(
                "SELECT count(*) FROM audit_logs WHERE organization_id = :o AND action <> 'retention.enforce'",
                o=alpha["org"],
            )
            == recent
        )
        assert store.exists("retention/audit_logs/beta/2024-09.parquet")
        manifest = json.loads(store.get("retention/audit_logs/alpha/2024-09.manifest.json"))
        table = read_parquet(store, "retention/audit_logs/alpha/2024-09.parquet")
        assert manifest["row_count"] == table.num_rows == 59
        assert manifest["organization"] == "alpha" and manifest["period"] == "2024-09"
        assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
        assert str(table.schema.field("id").type) == "extension<arrow.uuid>"
        ledger = db.all(
            "SELECT period, row_count, checksum FROM retention_archives WHERE organization_id = :o "
            "AND period >= '2024-01' "
            "ORDER BY period",
            o=alpha["org"],
        )
        assert [(r["period"], r["row_count"]) for r in ledger] == [("2024-09", 59), ("2024-10", 41)]
        assert ledger[0]["checksum"] == manifest["ids_checksum"]["sha256"]
        run_audit = db.all(
            "SELECT details FROM audit_logs WHERE organization_id = :o AND action = 'retention.enforce'", o=alpha["org"]
        )
        assert len(run_audit) == 1 and run_audit[0]["details"]["counts"]["audit_logs"] == 100
        assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'custom'") == 0  # alerts only on failure
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'retention.failed'") == 0
        assert len(run_audit[0]["details"]["archive_keys"]) == 2

        for period in ("2024-09", "2024-10"):
            first = restore_month(
                store, organization_id=alpha["org"], slug="alpha", period=period, hold_until=NOW + timedelta(days=30)
            )
            again = restore_month(
                store, organization_id=alpha["org"], slug="alpha", period=period, hold_until=NOW + timedelta(days=30)
            )
            assert first.inserted == first.archived_rows and again.inserted == 0
        assert audit_rows(db, alpha["org"], NOW - timedelta(days=730)) == before

        # restored months are held: the next run neither deletes them nor archives them again
        held = org_report(run(), "alpha")
        audit = next(c for c in held["categories"] if c["category"] == "audit_logs")
        assert (audit["count"], audit["held"]) == (0, 100)
        assert len(audit_rows(db, alpha["org"], NOW - timedelta(days=730))) == 100
        # after the hold they go again, and the archive still holds each row once
        enforce_retention.fn(as_of=NOW + timedelta(days=31))
        assert audit_rows(db, alpha["org"], NOW - timedelta(days=730)) == []
        table = read_parquet(store, "retention/audit_logs/alpha/2024-09.parquet")
        assert table.num_rows == 59 and len(set(table.column("id").to_pylist())) == 59
        db.close()

    def test_a_month_gaining_expired_rows_is_rewritten_with_all_its_rows(self, tenants_db, local_store):
        url, alpha, _ = tenants_db
        db = Db(url)
        seed_audit(db, alpha["org"], alpha["admin"], 20, start=datetime(2024, 11, 1, tzinfo=UTC), step_hours=24)
        first = enforce_retention.fn(as_of=datetime(2026, 11, 10, tzinfo=UTC), organization="alpha")
        assert counts(org_report(first, "alpha"))["audit_logs"] == 8  # Nov 2..9 2024 expired by Nov 10 2026
        second = enforce_retention.fn(as_of=datetime(2026, 11, 30, tzinfo=UTC), organization="alpha")
        assert counts(org_report(second, "alpha"))["audit_logs"] == 12
        table = read_parquet(local_store, "retention/audit_logs/alpha/2024-11.parquet")
        assert table.num_rows == 20 and len(set(table.column("id").to_pylist())) == 20
        manifest = json.loads(local_store.get("retention/audit_logs/alpha/2024-11.manifest.json"))
        assert manifest["row_count"] == 20
        db.close()

    def test_store_down_deletes_nothing_and_alerts(self, tenants_db, monkeypatch, s3_env):
        url, alpha, _ = tenants_db
        db = Db(url)
        seed_audit(db, alpha["org"], alpha["admin"], 30)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")  # nothing listens there
        monkeypatch.setenv("MLOPS_ARTIFACT_URI", "s3://mlops/down")

        summary = run(organization="alpha")

        report = org_report(summary, "alpha")
        assert report["status"] == "failed" and summary["failed"] == 1
        assert "audit_logs" in report["failures"][0]
        assert len(audit_rows(db, alpha["org"], NOW - timedelta(days=730))) == 30
        alert = db.all(
            "SELECT title, severity, message FROM alerts WHERE organization_id = :o AND alert_type = 'custom'",
            o=alpha["org"],
        )
        assert len(alert) == 1 and alert[0]["title"] == "Retention failed for alpha"
        event = db.all(
            "SELECT payload FROM notification_events WHERE organization_id = :o AND event_type = 'retention.failed'",
            o=alpha["org"],
        )
        assert len(event) == 1 and event[0]["payload"]["alert_id"]
        assert db.one("SELECT count(*) FROM retention_archives WHERE period >= '2024-01'") == 0
        db.close()


class TestRun:
    def test_dry_run_reports_per_category_and_changes_nothing(self, tenants_db, local_store):
        url, alpha, _ = tenants_db
        db = Db(url)
        seed_audit(db, alpha["org"], alpha["admin"], 10)
        tables = {
            t: db.one(f"SELECT count(*) FROM {t}")
            for t in ("audit_logs", "model_monitoring", "alerts", "notification_events", "retention_archives")
        }
        summary = run(dry_run=True)
        report = org_report(summary, "alpha")
        assert report["dry_run"] and counts(report)["audit_logs"] == 10
        assert next(c for c in report["categories"] if c["category"] == "audit_logs")["archive_keys"] == [
            "retention/audit_logs/alpha/2024-09.parquet"
        ]
        assert {t: db.one(f"SELECT count(*) FROM {t}") for t in tables} == tables
        assert list(local_store.list("retention/")) == []
        db.close()

    def test_bad_policy_skips_that_organization_only(self, tenants_db, local_store):
        url, alpha, beta = tenants_db
        db = Db(url)
        db.run(
            'UPDATE organizations SET settings = \'{"retention": {"audit_logs_days": "2y"}}\' WHERE id = :o',
            o=alpha["org"],
        )
        seed_audit(db, alpha["org"], alpha["admin"], 5)
        seed_audit(db, beta["org"], beta["admin"], 5)
        summary = run()
        bad, good = org_report(summary, "alpha"), org_report(summary, "beta")
        assert bad["status"] == "skipped" and "audit_logs_days" in bad["error"]
        assert good["status"] == "ok" and counts(good)["audit_logs"] == 5
        assert len(audit_rows(db, alpha["org"], NOW - timedelta(days=730))) == 5
        db.close()

    def test_an_admin_runs_it_on_demand_and_is_audited_as_themselves(self, tenants_db, local_store):
        url, alpha, _ = tenants_db
        db = Db(url)
        seed_audit(db, alpha["org"], alpha["admin"], 3)
        summary = run(organization="alpha", actor="admin@alpha.example")
        assert [r["organization"] for r in summary["organizations"]] == ["alpha"]
        row = db.all("SELECT user_id, details FROM audit_logs WHERE action = 'retention.enforce'")
        assert len(row) == 1 and row[0]["user_id"] == alpha["admin"] and "actor" not in row[0]["details"]
        with pytest.raises(PermissionDenied):
            run(organization="alpha", actor="developer@alpha.example")
        with pytest.raises(InvalidInput, match="--org"):
            run(actor="admin@alpha.example")
        assert db.one("SELECT count(*) FROM audit_logs WHERE action = 'retention.enforce.denied'") == 1
        db.close()

    def test_a_second_run_is_refused_while_one_holds_the_lock(self, fresh_db):
        with run_lock(), pytest.raises(Conflict, match="in progress"):
            enforce_retention.fn(dry_run=True)
        enforce_retention.fn(dry_run=True)  # released


class TestWithAnApiKeyInTheWorkersEnvironment:
    def test_the_schedule_acts_as_the_system_and_on_demand_as_the_key(self, tenants_db, local_store, monkeypatch):
        url, alpha, beta = tenants_db
        from core.errors import PermissionDenied
        from services import apikeys
        from services.auth import resolve_principal

        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        plaintext, _ = apikeys.create_key(
            admin, user_email="developer@alpha.example", name="worker", scopes=["models:read"]
        )
        monkeypatch.setenv("MLOPS_API_KEY", plaintext)  # one organization's key, without retention:run
        summary = run()  # as the daily schedule runs it: every organization, as the system
        assert org_report(summary, "alpha")["status"] == "ok" and org_report(summary, "beta")["status"] == "ok"
        db = Db(url)
        rows = db.all("SELECT organization_id, user_id, api_key_id FROM audit_logs WHERE action = 'retention.enforce'")
        assert {r["organization_id"] for r in rows} >= {alpha["org"], beta["org"]}
        assert all(r["user_id"] is None and r["api_key_id"] is None for r in rows)
        with pytest.raises(PermissionDenied):  # on demand, the key acts: it lacks the permission
            run(organization="alpha", on_demand=True)
        db.close()
