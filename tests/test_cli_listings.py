"""`mlops events` and `mlops drift reports`: what the flows wrote, read back as the caller may see it."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, pool, text

from tests.fixtures.cli import mlops, one_line_error, scalar

PROD = "acme/fraud-detection/fraud-api-prod"


def insert(env: dict, sql: str) -> None:
    engine = create_engine(env["MLOPS_MIGRATION_DATABASE_URL"], poolclass=pool.NullPool)  # the owner writes
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def test_events_lists_the_outbox_newest_first_and_pending_only_on_request(seeded):
    org = "(SELECT id FROM organizations WHERE slug = 'acme')"
    insert(
        seeded,
        f"INSERT INTO notification_events (organization_id, trigger_type, event_type, severity, "
        f"dispatched_at, created_at) VALUES ({org}, 'deployment', 'listing.sent', 'info', now(), "
        f"now() + interval '1 hour')",
    )
    insert(
        seeded,
        f"INSERT INTO notification_events (organization_id, trigger_type, event_type, severity, "
        f"created_at) VALUES ({org}, 'alert', 'listing.pending', 'high', now() + interval '2 hours')",
    )
    insert(
        seeded,
        "INSERT INTO notification_events (organization_id, trigger_type, event_type) "
        "SELECT id, 'alert', 'listing.other-tenant' FROM organizations WHERE slug <> 'acme'",
    )

    listed = mlops(seeded, "events", "--org", "acme", "--as", "viewer@acme.example", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["event_type"] for r in rows[:2]] == ["listing.pending", "listing.sent"]
    assert "listing.other-tenant" not in {r["event_type"] for r in rows}
    assert len(rows) == scalar(
        seeded, f"SELECT least(50, count(*)) FROM notification_events WHERE organization_id = {org}"
    )

    pending = json.loads(
        mlops(seeded, "events", "--org", "acme", "--pending", "--as", "viewer@acme.example", "--json").stdout
    )
    assert "listing.pending" in {r["event_type"] for r in pending}
    assert all(r["dispatched_at"] is None for r in pending)
    text = mlops(seeded, "events", "--org", "acme", "--limit", "1", "--as", "viewer@acme.example")
    assert text.returncode == 0 and "listing.pending" in text.stdout and "pending" in text.stdout


def test_drift_reports_lists_a_deployments_reports(seeded):
    dep = (
        "(SELECT d.id FROM deployments d JOIN projects p ON p.id = d.project_id "
        "WHERE p.slug = 'fraud-detection' AND d.name = 'fraud-api-prod' AND d.environment = 'production')"
    )
    insert(
        seeded,
        f"INSERT INTO data_drift_reports (deployment_id, drift_score, is_drift_detected, report_data, "
        f"period_start, period_end) VALUES ({dep}, 0.5, true, "
        """'{"columns": {"analysed": 4, "drifted": 2, "failed": 0}, "report_uri": "file:///r.html"}', """
        "now() + interval '9 days', now() + interval '10 days')",
    )
    listed = mlops(seeded, "drift", "reports", PROD, "--env", "production", "--as", "viewer@acme.example", "--json")
    assert listed.returncode == 0, listed.stderr
    [newest, *_] = json.loads(listed.stdout)
    assert (newest["drifted"], newest["analysed"], newest["is_drift_detected"]) == (2, 4, True)
    assert newest["report_uri"] == "file:///r.html"
    text = mlops(seeded, "drift", "reports", PROD, "--env", "production", "--as", "viewer@acme.example")
    assert text.returncode == 0 and "2/4" in text.stdout and "file:///r.html" in text.stdout


def test_listings_refuse_bad_input_and_strangers(seeded):
    bad = mlops(
        seeded, "drift", "reports", "acme/fraud-detection", "--env", "production", "--as", "viewer@acme.example"
    )
    assert bad.returncode == 2 and "ORG/PROJECT/DEPLOYMENT" in one_line_error(bad)
    missing = mlops(
        seeded, "drift", "reports", "acme/fraud-detection/nope", "--env", "production", "--as", "viewer@acme.example"
    )
    assert missing.returncode == 2 and "no deployment" in one_line_error(missing)
    stranger = mlops(seeded, "events", "--org", "acme", "--as", "nobody@nowhere.example")
    assert stranger.returncode in (2, 3)
    one_line_error(stranger)
