"""Notification rules and messages as pure functions: conditions, matching, life cycle, retries, signing, bodies."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from core.errors import InvalidInput
from tasks.notifications.messages import (
    EventView,
    Message,
    email_message,
    sign,
    slack_body,
    summary,
    teams_body,
    webhook_body,
    webhook_headers,
)
from tasks.notifications.rules import (
    DEAD_LETTER_EVENT,
    AlertState,
    Attempt,
    Backoff,
    EventFacts,
    RuleRow,
    alert_verdict,
    classify,
    decide,
    parse_conditions,
    parse_duration,
    parse_retry_after,
    plan_fanout,
    retry_delay,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PROJECT, OTHER_PROJECT, DEPLOYMENT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
CH1, CH2 = uuid.uuid4(), uuid.uuid4()


def event(**kw) -> EventFacts:
    base = dict(
        id=uuid.uuid4(),
        trigger_type="alert",
        event_type="alert.opened",
        severity="high",
        payload={},
        created_at=NOW,
        project_id=PROJECT,
        deployment_id=DEPLOYMENT,
        environment="production",
    )
    return EventFacts(**{**base, **kw})


def rule(channel=CH1, trigger="alert", project=None, deployment=None, conditions=None) -> RuleRow:
    return RuleRow(uuid.uuid4(), channel, trigger, project, deployment, conditions or {})


class TestParseConditions:
    def test_the_whole_vocabulary(self):
        c = parse_conditions(
            {
                "min_severity": "high",
                "alert_types": ["data_drift"],
                "environments": ["production"],
                "stages": ["production"],
                "statuses": ["open"],
                "event_types": ["alert.*"],
                "repeat_interval": "2h",
                "group_wait": 0,
            }
        )
        assert c.min_severity == "high" and c.repeat_interval == timedelta(hours=2) and c.group_wait == timedelta(0)
        assert c.event_types == ("alert.*",) and c.environments == frozenset({"production"})

    @pytest.mark.parametrize(
        "raw, says",
        [
            ([], "JSON object"),
            ({"severity": "high"}, "unknown key(s) severity"),
            ({"min_severity": "urgent"}, "min_severity must be one of"),
            ({"environments": "production"}, "non-empty list"),
            ({"environments": ["prod"]}, "unknown prod"),
            ({"alert_types": ["fire"]}, "unknown fire"),
            ({"repeat_interval": "soon"}, "duration like"),
            ({"group_wait": "40d"}, "between 0 and 30 days"),
        ],
    )
    def test_malformed_conditions_say_what_is_wrong(self, raw, says):
        with pytest.raises(InvalidInput) as exc:
            parse_conditions(raw)
        assert says in str(exc.value)

    def test_durations(self):
        assert parse_duration("15m", "x") == timedelta(minutes=15)
        assert parse_duration(90, "x") == timedelta(seconds=90)
        with pytest.raises(InvalidInput):
            parse_duration(True, "x")


class TestMatching:
    def test_scopes_organization_project_and_deployment(self):
        rules = [rule(CH1), rule(CH2, project=OTHER_PROJECT), rule(uuid.uuid4(), deployment=uuid.uuid4())]
        plan = plan_fanout([event()], rules)
        assert [t.channel_id for t in plan.targets] == [CH1]
        plan = plan_fanout([event()], [rule(CH2, project=PROJECT), rule(CH1, deployment=DEPLOYMENT)])
        assert {t.channel_id for t in plan.targets} == {CH1, CH2}

    def test_trigger_type_must_match(self):
        assert plan_fanout([event()], [rule(trigger="deployment")]).targets == []

    def test_two_rules_to_one_channel_deliver_once_with_the_most_specific_rule(self):
        broad, narrow = rule(CH1, conditions={"repeat_interval": "1h"}), rule(CH1, deployment=DEPLOYMENT)
        (target,) = plan_fanout([event()], [broad, narrow]).targets
        assert target.rule_id == narrow.id and target.repeat_interval == timedelta(hours=1)

    @pytest.mark.parametrize(
        "conditions, facts, matches",
        [
            ({"min_severity": "critical"}, {}, False),
            ({"min_severity": "medium"}, {}, True),
            ({"environments": ["staging"]}, {}, False),
            ({"alert_types": ["data_drift"]}, {"alert_type": "data_drift"}, True),
            ({"alert_types": ["data_drift"]}, {"payload": {"alert_type": "high_latency"}}, False),
            ({"stages": ["production"]}, {"payload": {"to_stage": "production"}}, True),
            ({"statuses": ["failed"]}, {"payload": {"status": "completed"}}, False),
            ({"statuses": ["open"]}, {"alert_id": uuid.uuid4(), "alert_status": "open"}, True),
            ({"event_types": ["alert.*", "x"]}, {}, True),
            ({"event_types": ["data_drift.*"]}, {}, False),
        ],
    )
    def test_conditions(self, conditions, facts, matches):
        assert bool(plan_fanout([event(**facts)], [rule(conditions=conditions)]).targets) is matches

    def test_a_malformed_rule_is_skipped_and_the_others_still_match(self):
        bad = rule(CH2, conditions={"min_severity": "urgent"})
        plan = plan_fanout([event()], [bad, rule(CH1)])
        assert [t.channel_id for t in plan.targets] == [CH1]
        assert "min_severity" in plan.invalid_rules[bad.id]

    def test_a_dead_letter_never_goes_to_the_channel_that_died(self):
        dead = event(event_type=DEAD_LETTER_EVENT, payload={"channel_id": str(CH1)})
        plan = plan_fanout([dead], [rule(CH1), rule(CH2)])
        assert [t.channel_id for t in plan.targets] == [CH2]


class TestAlertLifeCycle:
    alert = uuid.uuid4()

    def test_not_about_an_alert_is_sent(self):
        assert alert_verdict(event(), None, timedelta(hours=4), NOW) == "send"

    def test_open_alert_respects_the_repeat_interval(self):
        e = event(alert_id=self.alert, alert_status="open")
        assert alert_verdict(e, None, timedelta(hours=4), NOW) == "send"
        recent = AlertState(last_notified_at=NOW - timedelta(hours=1))
        assert alert_verdict(e, recent, timedelta(hours=4), NOW) == "repeat_interval"
        assert alert_verdict(e, recent, timedelta(minutes=30), NOW) == "send"

    def test_acknowledged_is_not_renotified_and_resolution_goes_once(self):
        assert alert_verdict(event(alert_id=self.alert, alert_status="acknowledged"), None, timedelta(0), NOW) == (
            "acknowledged"
        )
        resolved = event(event_type="alert.resolved", alert_id=self.alert, alert_status="resolved")
        assert alert_verdict(resolved, None, timedelta(hours=4), NOW) == "send"
        assert alert_verdict(resolved, AlertState(resolution_notified_at=NOW), timedelta(hours=4), NOW) == "resolved"
        late_open = event(alert_id=self.alert, alert_status="resolved")
        assert alert_verdict(late_open, None, timedelta(hours=4), NOW) == "resolved"


class TestRetries:
    @pytest.mark.parametrize(
        "code, verdict",
        [
            (200, "delivered"),
            (204, "delivered"),
            (None, "retry"),
            (408, "retry"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
            (400, "permanent"),
            (401, "permanent"),
            (404, "permanent"),
            (301, "permanent"),
        ],
    )
    def test_classify(self, code, verdict):
        assert classify(Attempt(code)) == verdict

    def test_smtp_kind_overrides_the_code(self):
        assert classify(Attempt(451, kind="retry")) == "retry" and classify(Attempt(550, kind="permanent")) == (
            "permanent"
        )

    def test_retry_after_seconds_and_dates(self):
        assert parse_retry_after("120", NOW) == 120
        assert parse_retry_after("Sun, 06 Dec 2026 12:01:00 GMT", NOW) == 60
        assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None

    def test_backoff_grows_with_jitter_and_is_capped(self):
        b, rng = Backoff(base_seconds=10, cap_seconds=100), random.Random(1)
        for attempts, full in ((1, 10), (2, 20), (3, 40), (10, 100)):
            delays = [retry_delay(attempts, b, rng=rng) for _ in range(50)]
            assert all(full / 2 <= d <= full for d in delays) and len(set(delays)) > 1

    def test_retry_after_is_honoured(self):
        assert retry_delay(1, Backoff(base_seconds=1), retry_after=300, rng=random.Random(1)) == 300

    def test_decide(self):
        b, rng = Backoff(base_seconds=1, max_attempts=3), random.Random(0)
        assert decide(Attempt(200), 1, b, NOW, rng).status == "delivered"
        assert decide(Attempt(404), 1, b, NOW, rng).status == "dead"
        failed = decide(Attempt(503), 1, b, NOW, rng)
        assert failed.status == "failed" and NOW < failed.next_attempt_at <= NOW + timedelta(seconds=1)
        assert decide(Attempt(429, retry_after="60"), 1, b, NOW, rng).next_attempt_at == NOW + timedelta(seconds=60)
        dead = decide(Attempt(None, error="no answer (ReadTimeout)"), 3, b, NOW, rng)
        assert dead.status == "dead" and "after 3 attempts" in dead.last_error


def view(**kw) -> EventView:
    base = dict(
        id=uuid.uuid4(),
        trigger_type="alert",
        event_type="data_drift.detected",
        severity="high",
        payload={"message": "drift in amount, see s3://bucket/report.html", "report_uri": "s3://b/r.html"},
        created_at=NOW,
        organization="acme",
        project="fraud",
        deployment="api",
        environment="production",
    )
    return EventView(**{**base, **kw})


class TestMessages:
    def test_standard_webhooks_signature_verifies(self):
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        msg_id, body = str(uuid.uuid4()), webhook_body(Message(uuid.uuid4(), (view(),)), NOW)
        headers = webhook_headers(msg_id, int(NOW.timestamp()), body, secret)
        assert headers["webhook-signature"] == sign(secret, msg_id, int(NOW.timestamp()), body)
        fresh = int(datetime.now(UTC).timestamp())
        Webhook(secret).verify(body, webhook_headers(msg_id, fresh, body, secret))

    def test_webhook_body_carries_type_organization_severity_payload_and_a_link_free_summary(self):
        e = view()
        data = json.loads(webhook_body(Message(uuid.uuid4(), (e,)), NOW))
        assert data["type"] == "data_drift.detected" and data["data"]["organization"] == "acme"
        assert data["data"]["severity"] == "high" and data["data"]["payload"]["report_uri"] == "s3://b/r.html"
        assert "s3://" not in data["data"]["summary"] and "[link removed]" in summary(e)

    def test_a_group_is_one_message(self):
        m = Message(uuid.uuid4(), (view(), view(severity="critical", event_type="alert.opened")))
        data = json.loads(webhook_body(m, NOW))
        assert data["type"] == "notification.group" and len(data["data"]["events"]) == 2
        assert data["data"]["severity"] == "critical"

    def test_slack_blocks_and_teams_card(self):
        m = Message(uuid.uuid4(), (view(),))
        slack = json.loads(slack_body(m))
        assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"] and slack["text"]
        teams = json.loads(teams_body(m))
        assert teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert teams["attachments"][0]["content"]["type"] == "AdaptiveCard"

    def test_email_has_text_and_html_and_a_message_id_per_delivery(self):
        delivery = uuid.uuid4()
        msg = email_message(Message(delivery, (view(),)), from_addr="a@x.example", to_addrs=["b@x.example"])
        assert msg["Message-ID"] == f"<{delivery}@mlops.notifications>"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
