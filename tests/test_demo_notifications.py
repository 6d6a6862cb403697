"""The demo's notification step: the outbox's events reach a local receiver, signed; a second run sends nothing."""

from __future__ import annotations

import pytest

from demo.notifications import run_notifications_demo
from demo.seed import seed_demo
from tests.factories import Db


@pytest.mark.slow
def test_demo_dispatches_the_outbox_to_a_local_receiver(fresh_db, monkeypatch, prefect_harness):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("MLOPS_SECRET_KEY", Fernet.generate_key().decode())
    seed_demo()
    db = Db(fresh_db)
    db.run(
        "INSERT INTO notification_events (organization_id, project_id, trigger_type, event_type, payload) "
        "SELECT o.id, p.id, 'model_update', 'model_version.promoted', "
        '\'{"model": "Credit Card Fraud Model", "version": "1.1.0", "to_stage": "production"}\' '
        "FROM organizations o JOIN projects p ON p.organization_id = o.id WHERE o.slug = 'acme'"
    )
    lines: list[str] = []
    run_notifications_demo(lines.append)
    text = "\n".join(lines)
    assert "added channel 'demo-receiver'" in text
    assert "signature ok" in text and "model_version.promoted" in text and "BAD SIGNATURE" not in text
    again: list[str] = []
    run_notifications_demo(again.append)
    assert "got nothing new" in "\n".join(again)
    assert db.one("SELECT count(*) FROM notification_deliveries WHERE status = 'delivered'") == 1
    db.close()
