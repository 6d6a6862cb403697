"""Metric aggregation rules (pure): alert configuration, breach and health verdicts, bucket arithmetic."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InvalidInput
from db.queries.metrics import BucketKey, RollupRow
from tasks.metrics.rules import DEFAULT_ALERT_RULES, alert_policy, backfill_windows, day_keys, judge

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def bucket(hour: int, p95: float) -> RollupRow:
    return RollupRow(
        uuid.uuid4(), "latency_p95_ms", "hour", T0 + timedelta(hours=hour), 10, p95, 0, p95, p95, p95, p95, 0, "rollup"
    )


class TestAlertPolicy:
    def test_defaults_apply_without_configuration(self):
        policy = alert_policy({})
        assert [r.alert_type for r in policy.rules] == list(DEFAULT_ALERT_RULES)
        assert policy.resolve_after == 3

    def test_overrides_merge_and_false_disables(self):
        policy = alert_policy(
            {
                "monitoring": {
                    "alerts": {"high_latency": {"max": 50, "buckets": 2}, "error_rate": False, "resolve_after": 5}
                }
            }
        )
        rules = {r.alert_type: r for r in policy.rules}
        assert set(rules) == {"high_latency", "performance_degradation"}
        assert (rules["high_latency"].maximum, rules["high_latency"].buckets) == (50.0, 2)
        assert policy.resolve_after == 5

    def test_switching_a_ceiling_to_a_floor(self):
        [rule] = [
            r
            for r in alert_policy({"monitoring": {"alerts": {"high_latency": {"min": 1}}}}).rules
            if r.alert_type == "high_latency"
        ]
        assert (rule.maximum, rule.minimum) == (None, 1.0)

    @pytest.mark.parametrize(
        ("alerts", "message"),
        [
            ({"latency": {}}, "unknown key(s) latency"),
            ({"high_latency": {"maximum": 3}}, "unknown key(s) maximum"),
            ({"high_latency": {"max": float("nan")}}, "max must be a finite number"),
            ({"high_latency": {"max": True}}, "max must be a finite number"),
            ({"high_latency": {"buckets": 0}}, "buckets must be a whole number"),
            ({"high_latency": {"statistic": "p90"}}, "statistic must be one of"),
            ({"high_latency": {"severity": "urgent"}}, "severity must be one of"),
            ({"high_latency": {"max": 1, "min": 0}}, "exactly one of max or min"),
            ({"high_latency": []}, "must be an object or false"),
            ({"resolve_after": 1000}, "resolve_after must be a whole number"),
            ([], "alerts must be an object"),
        ],
    )
    def test_bad_configuration_names_what_is_wrong(self, alerts, message):
        with pytest.raises(InvalidInput, match=re.escape(message)):
            alert_policy({"monitoring": {"alerts": alerts}})


class TestJudge:
    rule = next(
        r
        for r in alert_policy({"monitoring": {"alerts": {"high_latency": {"max": 50, "buckets": 2}}}}).rules
        if r.alert_type == "high_latency"
    )

    def test_breach_needs_the_last_n_buckets_all_over(self):
        assert judge(self.rule, 3, [bucket(0, 40), bucket(1, 60), bucket(2, 70)]) == "breach"
        assert judge(self.rule, 3, [bucket(0, 60), bucket(1, 40), bucket(2, 70)]) == "unknown"

    def test_healthy_needs_the_last_m_buckets_all_within(self):
        assert judge(self.rule, 2, [bucket(0, 90), bucket(1, 40), bucket(2, 45)]) == "healthy"
        assert judge(self.rule, 3, [bucket(0, 90), bucket(1, 40), bucket(2, 45)]) == "unknown"

    def test_order_of_rows_does_not_matter_and_too_few_buckets_decide_nothing(self):
        assert judge(self.rule, 3, [bucket(2, 70), bucket(1, 60)]) == "breach"
        assert judge(self.rule, 3, [bucket(0, 70)]) == "unknown"


def test_day_keys_are_distinct_utc_days():
    dep = uuid.uuid4()
    hours = [BucketKey(dep, "m", T0 + timedelta(hours=h)) for h in (1, 5, 23, 24, 30)]
    assert [k.bucket_start for k in day_keys(hours)] == [T0, T0 + timedelta(days=1)]


def test_backfill_windows_cover_whole_days_without_overlap():
    windows = list(backfill_windows(T0 + timedelta(hours=5), T0 + timedelta(days=15, hours=2), days=7))
    assert windows[0][0] == T0 and windows[-1][1] == T0 + timedelta(days=16)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert [(e - s).days for s, e in windows] == [7, 7, 2]
