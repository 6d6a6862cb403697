"""Rollout rules without a database: configuration, steps, traffic splits, health and bake verdicts."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from services.serving import DeploymentSpec, ServingStatus
from tasks.rollout.rules import (
    Overrides,
    VersionRef,
    backoff,
    bake_verdict,
    parse_steps,
    serving_config,
    split_of,
    stage_fits,
    step_health,
    step_lease_seconds,
    traffic_split,
)

NEW = VersionRef("id-new", "1.1.0", "s3://m/1.1.0/model.bin")
OLD = VersionRef("id-old", "1.0.0", "s3://m/1.0.0/model.bin")


class TestServingConfig:
    def test_registry_only_without_a_serving_block(self):
        assert serving_config({"env": {}}) is None
        assert serving_config(None) is None

    def test_defaults(self):
        config = serving_config({"serving": {"backend": "http", "control_url": "http://platform/x"}})
        assert config.steps == (100,) and config.bake_seconds == 300 and config.health_timeout_seconds == 300
        assert config.poll_interval_seconds == 2 and config.max_anomalies == 3

    def test_overrides_win_for_one_run(self):
        config = serving_config(
            {"serving": {"backend": "http", "control_url": "http://p/x", "steps": [50, 100], "bake_seconds": 60}},
            Overrides(steps=(10, 50, 100), bake_seconds=0, health_timeout_seconds=5),
        )
        assert config.steps == (10, 50, 100) and config.bake_seconds == 0 and config.health_timeout_seconds == 5

    @pytest.mark.parametrize(
        ("serving", "message"),
        [
            ({"backend": "k8s", "control_url": "http://p"}, "serving.backend must be one of http"),
            ({"backend": "http"}, "control_url must be an http"),
            ({"backend": "http", "control_url": "ftp://p"}, "control_url must be an http"),
            ({"backend": "http", "control_url": "http://p", "steps": [50]}, "last step must be 100"),
            ({"backend": "http", "control_url": "http://p", "steps": [50, 20, 100]}, "increase strictly"),
            ({"backend": "http", "control_url": "http://p", "bake_seconds": -1}, "bake_seconds must be >= 0"),
            ({"backend": "http", "control_url": "http://p", "health_timeout_seconds": 0}, "must be > 0"),
            ({"backend": "http", "control_url": "http://p", "max_anomalies": 1.5}, "max_anomalies"),
            ({"backend": "http", "control_url": "http://p", "colour": "red"}, "unknown serving key"),
            ("http", "must be an object"),
        ],
    )
    def test_bad_configuration_names_the_key(self, serving, message):
        with pytest.raises(InvalidInput, match=message):
            serving_config({"serving": serving})

    def test_steps_from_the_command_line(self):
        assert parse_steps("10, 50,100") == (10, 50, 100)
        with pytest.raises(InvalidInput, match="whole percentages"):
            parse_steps("10,half,100")
        with pytest.raises(InvalidInput, match="within 1..100"):
            parse_steps("0,100")

    def test_lease_covers_a_step(self):
        config = serving_config(
            {
                "serving": {
                    "backend": "http",
                    "control_url": "http://p",
                    "health_timeout_seconds": 10,
                    "bake_seconds": 5,
                    "lease_grace_seconds": 1,
                }
            }
        )
        assert step_lease_seconds(config) == 26
        assert step_lease_seconds(None) == 30


class TestTraffic:
    def test_split_sums_to_100(self):
        traffic = traffic_split(10, NEW, OLD)
        assert [(e["model_version"], e["percent"]) for e in traffic] == [("1.1.0", 10), ("1.0.0", 90)]
        assert traffic[0]["artifact_uri"] == NEW.artifact_uri and traffic[0]["model_version_id"] == "id-new"

    def test_last_step_and_first_deploy_are_all_new(self):
        assert split_of(traffic_split(100, NEW, OLD)) == {"1.1.0": 100}
        assert split_of(traffic_split(10, NEW, None)) == {"1.1.0": 10}
        assert split_of(traffic_split(10, NEW, NEW)) == {"1.1.0": 10}

    def test_bad_percent(self):
        with pytest.raises(InvalidInput):
            traffic_split(0, NEW, OLD)


class TestHealth:
    requested = traffic_split(50, NEW, OLD)

    def status(self, *entries, healthy=True):
        return ServingStatus(
            traffic=[{"model_version": v, "percent": p, "ready": r} for v, p, r in entries],
            endpoint_healthy=healthy,
            health_detail="GET http://e/health: 503",
        )

    def test_healthy(self):
        verdict = step_health(self.requested, self.status(("1.1.0", 50, True), ("1.0.0", 50, True)))
        assert verdict.ok and "all ready" in verdict.detail

    def test_wrong_split(self):
        verdict = step_health(self.requested, self.status(("1.1.0", 10, True), ("1.0.0", 90, True)))
        assert not verdict.ok and verdict.detail == "serving 1.0.0 90% + 1.1.0 10%, requested 1.1.0 50% + 1.0.0 50%"

    def test_not_ready(self):
        verdict = step_health(self.requested, self.status(("1.1.0", 50, False), ("1.0.0", 50, True)))
        assert not verdict.ok and verdict.detail == "not ready: 1.1.0"

    def test_endpoint_unhealthy(self):
        verdict = step_health(self.requested, self.status(("1.1.0", 50, True), ("1.0.0", 50, True), healthy=False))
        assert not verdict.ok and "503" in verdict.detail

    def test_malformed_answer(self):
        assert not step_health(self.requested, ServingStatus(traffic=[{"percent": 1}])).ok


class TestBakeAndBackoff:
    def test_more_than_max_fails(self):
        assert bake_verdict(3, 3).ok
        assert not bake_verdict(4, 3).ok

    def test_backoff_doubles_and_stays_inside_the_budget(self):
        assert [backoff(n, 0.5, 100) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
        assert backoff(3, 0.5, 0.3) == 0.3


class TestStages:
    def test_production_takes_production_only(self):
        assert stage_fits("production", "production")
        assert not stage_fits("production", "staging")
        assert stage_fits("staging", "production") and stage_fits("development", "staging")
        assert not stage_fits("staging", "archived")


class TestHealthUrl:
    def test_origin_plus_path(self):
        spec = DeploymentSpec(
            "d",
            "n",
            "production",
            None,
            1,
            2,
            True,
            {},
            "http://c/x",
            endpoint_url="http://127.0.0.1:8080/fraud/predict",
            health_check_path="/health",
        )
        assert spec.health_url() == "http://127.0.0.1:8080/health"
        assert DeploymentSpec("d", "n", "production", None, 1, 2, True, {}, "http://c").health_url() is None
