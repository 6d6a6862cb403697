"""Flow `dispatch-notifications` against real receivers on 127.0.0.1 (HTTP verifying Standard Webhooks, aiosmtpd).

Every test asserts on what the receivers got (exact counts per event and channel), on the delivery rows, and on
the alerts and events dispatch writes. Backoffs and group waits are shortened through `DispatchSettings`.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from flows.notification_dispatch import dispatch_notifications
from services.secrets import secret_box
from tasks.notifications.channels import seal
from tasks.notifications.service import DispatchSettings
from tests.factories import Db
from tests.flows.notification_peers import SECRET, start_receiver

FAST = DispatchSettings(base_seconds=0.05, cap_seconds=0.2, max_attempts=4, group_wait_seconds=0, claim_seconds=30)


@pytest.fixture
def world(tenants_db, monkeypatch):
    """Two tenants, a receiver, and alpha's factory rule switched off (each test makes its own)."""
    url, alpha, beta = tenants_db
    monkeypatch.setenv("MLOPS_SECRET_KEY", Fernet.generate_key().decode())
    db = Db(url)
    db.run("UPDATE notification_rules SET is_active = false")
    db.run("UPDATE notification_events SET dispatched_at = now()")
    receiver, server = start_receiver()
    yield db, alpha, beta, receiver
    server.shutdown()
    server.server_close()
    db.close()


def ins(db, sql: str, **params) -> uuid.UUID:
    """INSERT ... RETURNING id, committed."""
    with db.engine.begin() as conn:
        return conn.execute(text(sql), params).scalar_one()


def channel(db, t, name: str, kind: str, settings: dict) -> uuid.UUID:
    config = seal(kind, settings, secret_box())
    return ins(
        db,
        "INSERT INTO notification_channels (organization_id, name, type, configuration, created_by) "
        "VALUES (:o, :n, :k, CAST(:c AS jsonb), :u) RETURNING id",
        o=t["org"],
        n=name,
        k=kind,
        c=json.dumps(config),
        u=t["admin"],
    )


def webhook(db, t, receiver, name: str, **extra) -> uuid.UUID:
    return channel(db, t, name, "webhook", {"url": f"{receiver.url}/{name}", "signing_secret": SECRET, **extra})


def rule(db, t, ch, trigger="alert", project=None, deployment=None, conditions=None) -> uuid.UUID:
    return ins(
        db,
        "INSERT INTO notification_rules (organization_id, project_id, deployment_id, channel_id, trigger_type, "
        "conditions, created_by) VALUES (:o, :p, :d, :c, :tr, CAST(:cond AS jsonb), :u) RETURNING id",
        o=t["org"],
        p=project,
        d=deployment,
        c=ch,
        tr=trigger,
        cond=json.dumps(conditions or {}),
        u=t["admin"],
    )


def event(
    db, t, event_type="data_drift.detected", trigger="alert", severity="high", deployment="production", payload=None
) -> uuid.UUID:
    dep = t[f"deployment_{deployment}"] if deployment else None
    return ins(
        db,
        "INSERT INTO notification_events (organization_id, project_id, deployment_id, trigger_type, event_type, "
        "severity, payload) VALUES (:o, :p, :d, :tr, :et, :s, CAST(:pl AS jsonb)) RETURNING id",
        o=t["org"],
        p=t["project"],
        d=dep,
        tr=trigger,
        et=event_type,
        s=severity,
        pl=json.dumps(payload or {"message": "drift in amount"}),
    )


def dispatch(settings=FAST, org="alpha") -> dict:
    return dispatch_notifications.fn(organization=org, settings=settings)


def drain(db, settings=FAST, timeout=20.0) -> None:
    """Dispatch until no delivery is pending, failed or sending and every event is dispatched."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatch(settings)
        left = db.one(
            "SELECT (SELECT count(*) FROM notification_deliveries WHERE status IN ('pending', 'failed', 'sending')) "
            "+ (SELECT count(*) FROM notification_events WHERE dispatched_at IS NULL)"
        )
        if left == 0:
            return
        time.sleep(0.05)
    raise AssertionError("deliveries still pending")


def deliveries(db, **where) -> list:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    return db.all(
        f"SELECT * FROM notification_deliveries WHERE {clause} AND event_id IN "
        "(SELECT id FROM notification_events WHERE event_type <> 'test.event')",
        **where,
    )


class TestDelivery:
    def test_a_signed_webhook_once_per_event_and_the_run_is_idempotent(self, world):
        db, alpha, _, rx = world
        ch = webhook(db, alpha, rx, "ops-hook")
        rule(db, alpha, ch)
        ev = event(db, alpha)
        summary = dispatch()
        assert summary["organizations"][0]["delivered"] == 1
        (got,) = rx.arrivals
        assert got.verified is True and got.path == "/ops-hook"
        body = got.json()
        assert body["type"] == "data_drift.detected" and body["data"]["event_id"] == str(ev)
        assert body["data"]["organization"] == "alpha" and body["data"]["severity"] == "high"
        (row,) = deliveries(db)
        assert got.msg_id == str(row["id"]) and row["status"] == "delivered" and row["attempts"] == 1
        assert row["response_code"] == 200 and row["delivered_at"] is not None
        assert db.one("SELECT dispatched_at FROM notification_events WHERE id = :e", e=ev) is not None
        dispatch()
        assert len(rx.arrivals) == 1

    def test_rule_scoping_conditions_and_one_delivery_per_channel(self, world):
        db, alpha, _, rx = world
        a, b, c, d = (webhook(db, alpha, rx, n) for n in ("org-wide", "project", "staging-only", "critical"))
        rule(db, alpha, a)
        rule(db, alpha, a, project=alpha["project"])  # a second rule to the same channel
        rule(db, alpha, b, project=alpha["project"], conditions={"environments": ["production"]})
        rule(db, alpha, c, deployment=alpha["deployment_staging"])
        rule(db, alpha, d, conditions={"min_severity": "critical"})
        rule(db, alpha, d, trigger="model_update")
        event(db, alpha)  # high, production
        event(
            db,
            alpha,
            event_type="model_version.promoted",
            trigger="model_update",
            severity="info",
            deployment=None,
            payload={"version": "1.1.0", "to_stage": "production"},
        )
        drain(db)
        counts = {p: len(rx.on(p)) for p in ("/org-wide", "/project", "/staging-only", "/critical")}
        assert counts == {"/org-wide": 1, "/project": 1, "/staging-only": 0, "/critical": 1}
        assert rx.on("/critical")[0].json()["type"] == "model_version.promoted"

    def test_a_malformed_rule_is_skipped_reported_once_and_others_still_deliver(self, world):
        db, alpha, _, rx = world
        good, bad = webhook(db, alpha, rx, "good"), webhook(db, alpha, rx, "bad")
        rule(db, alpha, good)
        bad_rule = rule(db, alpha, bad, conditions={"min_severity": "urgent"})
        event(db, alpha)
        summary = dispatch()
        assert any(str(bad_rule) in n and "min_severity" in n for n in summary["organizations"][0]["notes"])
        event(db, alpha, event_type="alert.opened")
        dispatch()
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'notification_rule.invalid'") == 1
        assert len(rx.on("/bad")) == 0 and len(rx.on("/good")) >= 2

    def test_beta_is_never_dispatched_by_alphas_run(self, world):
        db, alpha, beta, rx = world
        ch = webhook(db, beta, rx, "beta-hook")
        rule(db, beta, ch)
        event(db, beta)
        dispatch(org="alpha")
        assert rx.arrivals == []
        dispatch(org="beta")
        assert len(rx.on("/beta-hook")) == 1


class TestFailures:
    def test_injected_failures_retry_until_each_event_arrives_exactly_once(self, world):
        db, alpha, _, rx = world
        ch = webhook(db, alpha, rx, "flaky")
        rule(db, alpha, ch)
        events = [event(db, alpha, event_type=f"alert.e{i}") for i in range(10)]
        rx.script = lambda path, msg_id, seen: (503 if seen < 2 else 200, {}, 0.0)
        drain(db)
        assert rx.delivered("/flaky") == {str(r["id"]): 1 for r in deliveries(db)}
        assert len(rx.arrivals) == 30 and len(deliveries(db, status="delivered", attempts=3)) == len(events)

    def test_429_honours_retry_after(self, world):
        db, alpha, _, rx = world
        rule(db, alpha, webhook(db, alpha, rx, "limited"))
        event(db, alpha)
        rx.script = lambda path, msg_id, seen: (429, {"Retry-After": "2"}, 0.0) if seen == 0 else (200, {}, 0.0)
        dispatch()
        (row,) = deliveries(db)
        assert row["status"] == "failed" and row["response_code"] == 429
        assert (row["next_attempt_at"] - row["updated_at"]).total_seconds() >= 1.9
        dispatch()
        assert len(rx.arrivals) == 1  # not yet due
        time.sleep(2.1)
        dispatch()
        assert rx.delivered() == {str(row["id"]): 1}

    def test_a_stalled_receiver_times_out_and_the_retry_has_the_same_id(self, world):
        db, alpha, _, rx = world
        rule(db, alpha, webhook(db, alpha, rx, "slow", timeout_seconds=0.3))
        event(db, alpha)
        rx.script = lambda path, msg_id, seen: (200, {}, 1.0 if seen == 0 else 0.0)
        drain(db)
        (row,) = deliveries(db)
        assert [a.msg_id for a in rx.arrivals] == [str(row["id"])] * 2
        assert row["status"] == "delivered" and row["attempts"] == 2

    def test_dead_letters_open_one_alert_and_an_event_never_sent_to_the_dead_channel(self, world):
        db, alpha, _, rx = world
        gone, flaky, ops = (webhook(db, alpha, rx, n) for n in ("gone", "down", "ops"))
        for ch in (gone, flaky, ops):
            rule(db, alpha, ch)
        rx.script = lambda path, msg_id, seen: {"/gone": (404, {}, 0.0), "/down": (503, {}, 0.0)}.get(
            path, (200, {}, 0.0)
        )
        event(db, alpha)
        event(db, alpha, event_type="alert.other")
        drain(db)
        # refused: dead at once; out of attempts: dead after max_attempts; each channel also got the other's
        # dead letter (first one only: the repeat interval of the channel's alert), which died there too
        assert [a.json()["type"] for a in rx.on("/gone")].count("data_drift.detected") == 1
        assert len(rx.on("/gone")) == 3 and len(rx.on("/down")) == 3 * FAST.max_attempts
        dead = deliveries(db, status="dead")
        assert len(dead) == 6 and all(r["last_error"] for r in dead)
        alerts = db.all("SELECT title FROM alerts WHERE alert_type = 'custom' AND status = 'open'")
        assert sorted(a["title"] for a in alerts) == [
            "Notification channel 'down' is failing",
            "Notification channel 'gone' is failing",
        ]
        # four dead originals -> four events; the dead letters' own deaths are not reported again
        assert db.one("SELECT count(*) FROM notification_events WHERE event_type = 'notification.dead'") == 4
        letters = {
            (a.path, a.json()["data"]["payload"]["channel"])
            for a in rx.arrivals
            if a.json()["type"] == "notification.dead"
        }
        # to ops and to the other failing channel, never to the channel that died
        assert letters == {("/ops", "down"), ("/ops", "gone"), ("/gone", "down"), ("/down", "gone")}
        assert [a.json()["type"] for a in rx.on("/ops")].count("notification.dead") == 2


class TestConcurrency:
    @pytest.mark.slow
    def test_four_dispatchers_racing_deliver_each_event_once_per_channel(self, world):
        db, alpha, _, rx = world
        channels = [webhook(db, alpha, rx, f"race{i}") for i in range(2)]
        for ch in channels:
            rule(db, alpha, ch)
        for i in range(150):
            event(db, alpha, event_type=f"alert.e{i}")
        rx.script = lambda path, msg_id, seen: (503 if seen == 0 and hash(msg_id) % 5 == 0 else 200, {}, 0.0)
        settings = DispatchSettings(
            batch_size=20, concurrency=8, base_seconds=0.02, cap_seconds=0.05, max_attempts=5, group_wait_seconds=0
        )
        stop = time.monotonic() + 30
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < stop:
                list(pool.map(lambda _: dispatch(settings), range(4)))
                if db.one("SELECT count(*) FROM notification_deliveries WHERE status <> 'delivered'") == 0:
                    break
        rows = deliveries(db)
        assert len(rows) == 300 and {r["status"] for r in rows} == {"delivered"}
        for i, ch in enumerate(channels):
            expected = {str(r["id"]): 1 for r in rows if r["channel_id"] == ch}
            assert rx.delivered(f"/race{i}") == expected


class TestAlertLifeCycle:
    def alert(self, db, t) -> uuid.UUID:
        return ins(
            db,
            "INSERT INTO alerts (organization_id, deployment_id, alert_type, severity, title, message) "
            "VALUES (:o, :d, 'data_drift', 'high', 'drift', 'drift') RETURNING id",
            o=t["org"],
            d=t["deployment_production"],
        )

    def test_repeat_interval_acknowledgement_and_one_resolution(self, world):
        db, alpha, _, rx = world
        rule(db, alpha, webhook(db, alpha, rx, "oncall"), conditions={"repeat_interval": "1s"})
        alert = self.alert(db, alpha)
        payload = {"alert_id": str(alert), "message": "drift"}
        event(db, alpha, payload=payload)
        event(db, alpha, payload=payload)  # a re-detection within the repeat interval
        drain(db)
        assert len(rx.arrivals) == 1
        time.sleep(1.1)
        event(db, alpha, payload=payload)
        drain(db)
        assert len(rx.arrivals) == 2
        db.run("UPDATE alerts SET status = 'acknowledged', acknowledged_at = now() WHERE id = :a", a=alert)
        time.sleep(1.1)
        event(db, alpha, payload=payload)
        drain(db)
        assert len(rx.arrivals) == 2  # acknowledged: not re-notified
        db.run("UPDATE alerts SET status = 'resolved', resolved_at = now() WHERE id = :a", a=alert)
        event(db, alpha, event_type="alert.resolved", severity="info", payload=payload)
        event(db, alpha, event_type="alert.resolved", severity="info", payload=payload)
        event(db, alpha, payload=payload)  # a late "detected" after the resolution
        drain(db)
        assert [a.json()["type"] for a in rx.arrivals[2:]] == ["alert.resolved"]

    def test_default_repeat_interval_is_four_hours(self, world):
        db, alpha, _, rx = world
        rule(db, alpha, webhook(db, alpha, rx, "oncall"))
        alert = self.alert(db, alpha)
        event(db, alpha, payload={"alert_id": str(alert)})
        drain(db)
        db.run("UPDATE notification_alert_state SET last_notified_at = now() - interval '3 hours 59 minutes'")
        event(db, alpha, payload={"alert_id": str(alert)})
        drain(db)
        assert len(rx.arrivals) == 1
        db.run("UPDATE notification_alert_state SET last_notified_at = now() - interval '4 hours 1 minute'")
        event(db, alpha, payload={"alert_id": str(alert)})
        drain(db)
        assert len(rx.arrivals) == 2

    def test_one_deployments_events_within_group_wait_are_one_message_per_channel(self, world):
        db, alpha, _, rx = world
        rule(db, alpha, webhook(db, alpha, rx, "grouped"))
        for i in range(3):
            event(db, alpha, event_type=f"alert.e{i}")
        event(db, alpha, event_type="alert.staging", deployment="staging")
        event(db, alpha, event_type="org.wide", deployment=None)
        grouping = DispatchSettings(base_seconds=0.05, group_wait_seconds=1.0)
        dispatch(grouping)
        assert [a.json()["type"] for a in rx.arrivals] == ["org.wide"]  # not grouped: no deployment
        time.sleep(1.1)
        dispatch(grouping)
        bodies = sorted((a.json() for a in rx.arrivals[1:]), key=lambda b: b["type"])
        assert [b["type"] for b in bodies] == ["alert.staging", "notification.group"]
        assert [e["event_type"] for e in bodies[1]["data"]["events"]] == ["alert.e0", "alert.e1", "alert.e2"]
        assert len(deliveries(db, status="delivered")) == 5


class TestChannels:
    def test_slack_blocks_and_teams_card(self, world):
        db, alpha, _, rx = world
        rule(db, alpha, channel(db, alpha, "slack", "slack", {"webhook_url": f"{rx.url}/slack/T0/secret-token"}))
        rule(db, alpha, channel(db, alpha, "teams", "teams", {"webhook_url": f"{rx.url}/teams/secret"}))
        event(db, alpha)
        dispatch()
        slack = rx.on("/slack/T0/secret-token")[0].json()
        assert slack["blocks"][0]["type"] == "header" and "data_drift.detected" in slack["text"]
        teams = rx.on("/teams/secret")[0].json()
        assert teams["attachments"][0]["content"]["type"] == "AdaptiveCard"

    def test_email_over_smtp_with_text_html_and_a_message_id_per_delivery(self, world, smtp_peer):
        db, alpha, _, rx = world
        settings = {
            "smtp_host": smtp_peer.host,
            "smtp_port": smtp_peer.port,
            "from_addr": "mlops@alpha.example",
            "to_addrs": ["oncall@alpha.example"],
        }
        rule(db, alpha, channel(db, alpha, "mail", "email", settings))
        event(db, alpha)
        dispatch()
        (message,) = smtp_peer.messages
        (row,) = deliveries(db)
        assert message["Message-ID"] == f"<{row['id']}@mlops.notifications>"
        assert {p.get_content_type() for p in message.walk()} >= {"text/plain", "text/html"}

    def test_secrets_never_reach_logs_or_errors(self, world, caplog):
        db, alpha, _, rx = world
        rule(db, alpha, webhook(db, alpha, rx, "leaky-token-123"))
        rx.script = lambda path, msg_id, seen: (500, {}, 0.0)
        event(db, alpha)
        with caplog.at_level("DEBUG"):
            drain(db)
        text = caplog.text + json.dumps([dict(r) for r in deliveries(db)], default=str)
        assert "leaky-token-123" not in text and SECRET not in text


@pytest.mark.slow
def test_a_dispatcher_killed_mid_send_is_finished_by_the_next(world, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    db, alpha, _, rx = world
    rule(db, alpha, webhook(db, alpha, rx, "crash"))
    for i in range(5):
        event(db, alpha, event_type=f"alert.e{i}")

    def script(path, msg_id, seen):
        return (200, {}, 30.0 if seen == 0 else 0.0)  # the first try of each stalls: the dispatcher dies there

    rx.script = script
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.flows.notification_crash_child", "alpha"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(rx.arrivals) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(rx.arrivals) == 5
    child.send_signal(signal.SIGKILL)
    child.wait()
    rows = deliveries(db)
    assert {r["status"] for r in rows} == {"sending"}
    time.sleep(1.2)  # the child's claim (1 s) expires
    drain(db)
    rows = deliveries(db, status="delivered")
    assert len(rows) == 5 and {r["attempts"] for r in rows} == {2}
    ids = {str(r["id"]) for r in rows}
    # the killed attempt and the retry carry the same webhook-id: receivers drop the repeat
    assert sorted(a.msg_id for a in rx.arrivals) == sorted([*ids, *ids])
