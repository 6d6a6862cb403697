"""`mlops dispatch`, `rules`, `deliveries` and `alerts` as users run them: exit codes, one line on stderr, audit."""

from __future__ import annotations

import json

from tests.factories import Db
from tests.fixtures.cli import mlops, one_line_error, scalar

ADMIN = ("--org", "acme", "--as", "admin@acme.example")
DEV = ("--org", "acme", "--as", "dev@acme.example")
VIEWER = ("--org", "acme", "--as", "viewer@acme.example")


def owner(env) -> Db:
    return Db(env["MLOPS_MIGRATION_DATABASE_URL"])


def test_rules_add_validates_and_writes_nothing_on_failure(seeded):
    before = scalar(seeded, "SELECT count(*) FROM notification_rules")
    cases = [
        (("--trigger", "page"), 2, "--trigger must be one of"),
        (("--trigger", "alert", "--conditions", "{nope"), 2, "not valid JSON"),
        (("--trigger", "alert", "--conditions", '{"min_severity": "urgent"}'), 2, "min_severity must be one of"),
        (("--trigger", "alert", "--deployment", "acme/fraud-detection"), 2, "ORG/PROJECT/DEPLOYMENT"),
        (("--trigger", "alert", "--project", "nope"), 2, "unknown project 'nope'"),
    ]
    for args, code, says in cases:
        result = mlops(seeded, "rules", "add", "--channel", "ops-webhook", *args, *ADMIN)
        assert result.returncode == code, result.stderr
        assert says in one_line_error(result)
    refused = mlops(seeded, "rules", "add", "--channel", "ops-webhook", "--trigger", "alert", *VIEWER)
    assert refused.returncode == 3 and "may not" in one_line_error(refused)
    assert scalar(seeded, "SELECT count(*) FROM notification_rules") == before
    assert scalar(seeded, "SELECT count(*) FROM audit_logs WHERE action = 'notification_rule.create.denied'") == 1


def test_rules_add_for_a_deployment_then_list(seeded):
    added = mlops(
        seeded,
        "rules",
        "add",
        "--channel",
        "ops-webhook",
        "--trigger",
        "deployment",
        "--deployment",
        "acme/fraud-detection/fraud-api-prod",
        "--env",
        "production",
        "--conditions",
        '{"statuses": ["failed"], "repeat_interval": "1h"}',
        "--as",
        "admin@acme.example",
    )
    assert added.returncode == 0, added.stderr
    assert "deployment events of acme/fraud-detection/fraud-api-prod" in added.stdout
    listed = json.loads(mlops(seeded, "rules", "list", *VIEWER, "--json").stdout)
    mine = [r for r in listed if r["trigger_type"] == "deployment"]
    assert mine and mine[0]["deployment"] == "fraud-api-prod" and mine[0]["conditions"]["statuses"] == ["failed"]
    assert scalar(seeded, "SELECT count(*) FROM audit_logs WHERE action = 'notification_rule.create'") == 1


def test_dispatch_then_deliveries_and_retry(seeded):
    # the seeded channel points at a closed port: every delivery fails and is retried later
    db = owner(seeded)
    db.run(
        "INSERT INTO notification_events (organization_id, project_id, trigger_type, event_type, payload) "
        "SELECT o.id, p.id, 'model_update', 'model_version.registered', '{\"version\": \"9.9.9\"}' "
        "FROM organizations o JOIN projects p ON p.organization_id = o.id "
        "WHERE o.slug = 'acme' AND p.slug = 'fraud-detection'"
    )
    ran = mlops(seeded, "dispatch", "--org", "acme", "--json")
    assert ran.returncode == 0, ran.stderr
    [acme] = json.loads(ran.stdout)["organizations"]
    assert acme["deliveries_created"] >= 1 and acme["failed"] >= 1 and acme["delivered"] == 0
    failed = json.loads(mlops(seeded, "deliveries", "--status", "failed", "--json", *VIEWER).stdout)
    assert failed and all("no answer" in r["last_error"] for r in failed)
    assert "127.0.0.1" not in ran.stdout + json.dumps(failed)  # the URL is a secret
    target = failed[0]["id"]
    db.run("UPDATE notification_deliveries SET status = 'dead', attempts = 8 WHERE id = :i", i=target)
    assert json.loads(mlops(seeded, "deliveries", "--status", "dead", "--json", *VIEWER).stdout)[0]["id"] == target
    refused = mlops(seeded, "deliveries", "retry", target, *VIEWER)
    assert refused.returncode == 3
    retried = mlops(seeded, "deliveries", "retry", target, *ADMIN)
    assert retried.returncode == 0, retried.stderr and "dead -> pending" in retried.stdout
    row = db.all("SELECT status, attempts FROM notification_deliveries WHERE id = :i", i=target)[0]
    assert (row["status"], row["attempts"]) == ("pending", 0)
    again = mlops(seeded, "deliveries", "retry", target, *ADMIN)
    assert again.returncode == 1 and "only dead or failed" in one_line_error(again)
    assert mlops(seeded, "deliveries", "retry", "not-a-uuid", *ADMIN).returncode == 2
    assert scalar(seeded, "SELECT count(*) FROM audit_logs WHERE action = 'notification_delivery.retry'") == 1
    assert mlops(seeded, "deliveries", "--status", "lost", *VIEWER).returncode == 2
    db.close()


def test_alerts_list_ack_and_resolve(seeded):
    rows = json.loads(mlops(seeded, "alerts", "--status", "open", "--json", *VIEWER).stdout)
    assert rows and {r["status"] for r in rows} == {"open"}
    alert = rows[0]["id"]
    assert mlops(seeded, "alerts", "ack", alert, *VIEWER).returncode == 3
    acked = mlops(seeded, "alerts", "ack", alert, *DEV)
    assert acked.returncode == 0 and "acknowledged" in acked.stdout
    assert mlops(seeded, "alerts", "ack", alert, *DEV).stdout.strip().endswith("already acknowledged")
    resolved = mlops(seeded, "alerts", "resolve", alert, *ADMIN)
    assert resolved.returncode == 0, resolved.stderr
    assert scalar(seeded, f"SELECT status FROM alerts WHERE id = '{alert}'") == "resolved"
    assert (
        scalar(
            seeded,
            f"SELECT count(*) FROM notification_events WHERE event_type = 'alert.resolved' "
            f"AND payload->>'alert_id' = '{alert}'",
        )
        == 1
    )
    actions = scalar(
        seeded, f"SELECT string_agg(action, ',' ORDER BY created_at) FROM audit_logs WHERE resource_id = '{alert}'"
    )
    assert actions == "alert.acknowledge.denied,alert.acknowledge,alert.resolve"
    text = mlops(seeded, "alerts", "--status", "resolved", *VIEWER).stdout
    assert alert in text
    assert mlops(seeded, "alerts", "resolve", "00000000-0000-0000-0000-000000000000", *ADMIN).returncode == 2
