"""Flow dispatch-notifications run both ways (orchestrated, and direct as `mlops dispatch` runs it without a
Prefect API): each event reaches each channel once, signed, and dead letters end the same way."""

from __future__ import annotations

from flows.notification_dispatch import dispatch_notifications
from tests.flows import test_notification_dispatch as dispatch

world = dispatch.world  # two tenants and a webhook receiver on 127.0.0.1; alpha's factory rule switched off


def test_a_signed_webhook_once_per_event_both_ways(world, flow_runner):
    db, alpha, _, rx = world
    dispatch.rule(db, alpha, dispatch.webhook(db, alpha, rx, "ops-hook"))
    ev = dispatch.event(db, alpha)
    summary = flow_runner(dispatch_notifications, organization="alpha", settings=dispatch.FAST)
    assert summary["organizations"][0]["delivered"] == 1 and summary["failed"] == []
    (got,) = rx.arrivals
    assert got.verified is True and got.json()["data"]["event_id"] == str(ev)
    (row,) = dispatch.deliveries(db)
    assert row["status"] == "delivered" and got.msg_id == str(row["id"])
    flow_runner(dispatch_notifications, organization="alpha", settings=dispatch.FAST)
    assert len(rx.arrivals) == 1


def test_a_refusing_channel_is_a_dead_letter_with_one_alert_both_ways(world, flow_runner):
    db, alpha, _, rx = world
    dispatch.rule(db, alpha, dispatch.webhook(db, alpha, rx, "gone"))
    rx.script = lambda path, msg_id, seen: (404, {}, 0.0)
    dispatch.event(db, alpha)
    summary = flow_runner(dispatch_notifications, organization="alpha", settings=dispatch.FAST)
    assert summary["organizations"][0]["dead"] == 1
    [dead] = dispatch.deliveries(db, status="dead")
    assert dead["response_code"] == 404
    alerts = db.all("SELECT title FROM alerts WHERE alert_type = 'custom' AND status = 'open'")
    assert [a["title"] for a in alerts] == ["Notification channel 'gone' is failing"]
