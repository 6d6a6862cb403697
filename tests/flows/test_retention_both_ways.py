"""Flow enforce-retention run both ways (orchestrated, and direct as `mlops retention` runs it without a Prefect
API): the same dry-run counts, the same archives and deletes."""

from __future__ import annotations

from datetime import timedelta

from flows.retention import enforce_retention
from tests.factories import Db
from tests.flows import test_retention as retention

local_store = retention.local_store  # the artifact store in the test's directory


def test_a_dry_run_then_a_real_run_archive_and_delete_the_same_rows_both_ways(tenants_db, local_store, flow_runner):
    url, alpha, beta = tenants_db
    db = Db(url)
    try:
        retention.seed_audit(db, alpha["org"], alpha["admin"], 30)
        dry = flow_runner(enforce_retention, as_of=retention.NOW, organization="alpha", dry_run=True)
        assert retention.counts(retention.org_report(dry, "alpha"))["audit_logs"] == 30
        assert len(retention.audit_rows(db, alpha["org"], retention.NOW - timedelta(days=730))) == 30
        real = flow_runner(enforce_retention, as_of=retention.NOW, organization="alpha", batch_size=7)
        report = retention.org_report(real, "alpha")
        assert report["status"] == "ok" and retention.counts(report)["audit_logs"] == 30
        assert retention.audit_rows(db, alpha["org"], retention.NOW - timedelta(days=730)) == []
        assert local_store.exists("retention/audit_logs/alpha/2024-09.parquet")
        assert real["failed"] == 0
    finally:
        db.close()
