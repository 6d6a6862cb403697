"""Registry rules (pure): versions, references, transitions, the promotion policy and every gate."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from tasks.promotion.report import promotion_markdown
from tasks.promotion.rules import (
    Champion,
    GateInputs,
    PromotionPolicy,
    evaluate_gates,
    gates_for,
    greater_is_better,
    promotion_policy,
)
from tasks.registry.rules import artifact_key, classify_transition, parse_model_ref, validate_version


class TestValidateVersion:
    @pytest.mark.parametrize(
        "good", ["1.0.0", "0.1.2", "10.20.30", "2.0.0-rc.1", "1.0.0-alpha+build.7", "1.0.0+20261124"]
    )
    def test_semantic_versions_pass(self, good):
        assert validate_version(good) == good

    @pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1..0", "latest", "", "1.0.0 ", "1" * 51])
    def test_malformed_versions_are_refused(self, bad):
        with pytest.raises(InvalidInput, match="malformed version"):
            validate_version(bad)


class TestParseModelRef:
    def test_model_names_may_contain_spaces_and_slashes(self):
        assert parse_model_ref("acme/fraud-detection/Credit Card Fraud Model") == (
            "acme",
            "fraud-detection",
            "Credit Card Fraud Model",
        )
        assert parse_model_ref("a/b/c/d") == ("a", "b", "c/d")

    @pytest.mark.parametrize("bad", ["acme", "acme/fraud", "acme//model", "/p/m"])
    def test_incomplete_references_are_refused(self, bad):
        with pytest.raises(InvalidInput, match="ORG/PROJECT/MODEL"):
            parse_model_ref(bad)


class TestClassifyTransition:
    @pytest.mark.parametrize(
        ("current", "target", "kind"),
        [
            ("development", "staging", "promotion"),
            ("staging", "production", "promotion"),
            ("production", "staging", "demotion"),
            ("development", "archived", "archive"),
            ("staging", "archived", "archive"),
            ("production", "archived", "archive"),
            ("staging", "staging", "noop"),
        ],
    )
    def test_legal_transitions(self, current, target, kind):
        assert classify_transition(current, target) == kind

    @pytest.mark.parametrize(
        ("current", "target"),
        [
            ("staging", "development"),
            ("production", "development"),
            ("archived", "staging"),
            ("archived", "production"),
        ],
    )
    def test_illegal_transitions(self, current, target):
        with pytest.raises(InvalidInput, match="illegal transition"):
            classify_transition(current, target)

    def test_skipping_staging_needs_the_project_setting(self):
        with pytest.raises(InvalidInput, match="promote to staging first"):
            classify_transition("development", "production")
        assert classify_transition("development", "production", allow_skip=True) == "promotion"

    def test_unknown_stage(self):
        with pytest.raises(InvalidInput, match="unknown stage 'prod'"):
            classify_transition("staging", "prod")


class TestPromotionPolicy:
    def test_defaults_by_model_type(self):
        assert promotion_policy({}, {}, model_type="classification").primary_metric == "accuracy"
        assert promotion_policy(None, None, model_type="regression").primary_metric == "rmse"

    def test_model_overrides_project(self):
        policy = promotion_policy(
            {"promotion": {"primary_metric": "f1", "min_hours_in_staging": 48, "allow_skip_staging": True}},
            {"promotion": {"primary_metric": "auc"}},
        )
        assert (policy.primary_metric, policy.min_hours_in_staging, policy.allow_skip_staging) == ("auc", 48, True)

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"promotion": {"primary": "auc"}}, "unknown promotion setting"),
            ({"promotion": {"min_relative_change": 2}}, "between 0 and 1"),
            ({"promotion": {"min_absolute_change": "big"}}, "must be a number"),
            ({"promotion": {"staging_gates": ["vibes"]}}, "unknown gate"),
            ({"promotion": "strict"}, "must be an object"),
        ],
    )
    def test_malformed_settings_are_refused(self, settings, message):
        with pytest.raises(InvalidInput, match=message):
            promotion_policy(settings, {})


class TestDirection:
    @pytest.mark.parametrize(
        ("metric", "higher"),
        [
            ("auc", True),
            ("accuracy", True),
            ("rmse", False),
            ("val_loss", False),
            ("latency_p95_ms", False),
            ("f1", True),
        ],
    )
    def test_direction_by_name(self, metric, higher):
        assert greater_is_better(metric, PromotionPolicy()) is higher

    def test_policy_overrides_direction_of_its_primary_metric(self):
        assert greater_is_better("score", PromotionPolicy(primary_metric="score", greater_is_better=False)) is False

    @pytest.mark.parametrize("metric", ["answer_accuracy", "cancer_recall", "lower_bound_auc", "error_budget"])
    def test_a_name_is_never_guessed_from_a_substring(self, metric):
        with pytest.raises(
            InvalidInput, match=f"direction of metric '{metric}' is unknown: declare it in promotion.metric_directions"
        ):
            greater_is_better(metric, PromotionPolicy())
        assert greater_is_better(metric, PromotionPolicy(metric_directions={metric: "higher"})) is True

    def test_the_policy_declares_directions_and_refuses_an_unknown_one(self):
        policy = promotion_policy(
            {
                "promotion": {
                    "primary_metric": "cancer_recall",
                    "guard_metrics": {"p99_wait": 1},
                    "metric_directions": {"cancer_recall": "higher", "p99_wait": "lower"},
                }
            },
            {},
        )
        assert greater_is_better("p99_wait", policy) is False and greater_is_better("cancer_recall", policy) is True
        with pytest.raises(InvalidInput, match="direction of metric 'p99_wait' is unknown"):
            promotion_policy({"promotion": {"primary_metric": "auc", "guard_metrics": {"p99_wait": 1}}}, {})
        with pytest.raises(InvalidInput, match="must be 'higher' or 'lower'"):
            promotion_policy({"promotion": {"metric_directions": {"auc": "up"}}}, {})

    def test_guard_metric_direction_comes_from_the_policy(self):
        policy = PromotionPolicy(
            primary_metric="auc",
            guard_metrics={"answer_accuracy": 0.01},
            metric_directions={"answer_accuracy": "higher"},
        )
        champion = Champion("1.0.0", {"auc": 0.9, "answer_accuracy": 0.80})
        result = gate(policy, candidate_metrics={"auc": 0.91, "answer_accuracy": 0.70}, champion=champion)
        assert (
            not result.passed and "guard answer_accuracy=0.7 is worse" in result.detail
        )  # a regex said lower is better


def gate(policy, **inputs):
    results = evaluate_gates(policy, GateInputs(target_stage="production", **inputs), ["champion_challenger"])
    return results[0]


class TestChampionChallenger:
    def test_higher_is_better_candidate_must_not_be_worse_by_default(self):
        policy = PromotionPolicy(primary_metric="auc")
        assert gate(policy, candidate_metrics={"auc": 0.97}, champion=Champion("1.0.0", {"auc": 0.96})).passed
        assert gate(policy, candidate_metrics={"auc": 0.96}, champion=Champion("1.0.0", {"auc": 0.96})).passed
        lost = gate(policy, candidate_metrics={"auc": 0.95}, champion=Champion("1.0.0", {"auc": 0.96}))
        assert not lost.passed and "worse than production 1.0.0" in lost.detail

    def test_lower_is_better_direction(self):
        policy = PromotionPolicy(primary_metric="rmse")
        assert gate(policy, candidate_metrics={"rmse": 1.1}, champion=Champion("1.0.0", {"rmse": 1.2})).passed
        assert not gate(policy, candidate_metrics={"rmse": 1.3}, champion=Champion("1.0.0", {"rmse": 1.2})).passed

    @pytest.mark.parametrize(
        ("candidate", "champion", "higher", "passed"),
        [
            (0.79, 0.7, True, False),  # MLflow: improvement must exceed 0.1
            (0.8 + 1e-9, 0.7, True, True),
            (0.5, 0.6, False, False),  # lower is better, by more than 0.1
            (0.2 - 1e-9, 0.3, False, True),
        ],
    )
    def test_min_absolute_change(self, candidate, champion, higher, passed):
        policy = PromotionPolicy(primary_metric="m", greater_is_better=higher, min_absolute_change=0.1)
        assert (
            gate(policy, candidate_metrics={"m": candidate}, champion=Champion("1", {"m": champion})).passed is passed
        )

    @pytest.mark.parametrize(
        ("candidate", "champion", "higher", "passed"),
        [
            (0.75, 0.7, True, False),
            (0.78, 0.7, True, True),
            (0.55, 0.6, False, False),
            (0.5, 0.6, False, True),
            (1e-10, 0.0, True, True),  # MLflow: a zero baseline needs any improvement
            (0.0, 0.0, True, False),
        ],
    )
    def test_min_relative_change(self, candidate, champion, higher, passed):
        policy = PromotionPolicy(primary_metric="m", greater_is_better=higher, min_relative_change=0.1)
        assert (
            gate(policy, candidate_metrics={"m": candidate}, champion=Champion("1", {"m": champion})).passed is passed
        )

    def test_absolute_threshold(self):
        policy = PromotionPolicy(primary_metric="auc", threshold=0.9)
        assert not gate(policy, candidate_metrics={"auc": 0.89}).passed
        assert gate(policy, candidate_metrics={"auc": 0.9}).passed

    def test_first_production_version_has_nothing_to_beat(self):
        result = gate(PromotionPolicy(primary_metric="auc"), candidate_metrics={"auc": 0.5})
        assert result.passed and "no production version" in result.detail

    def test_champion_without_the_metric_fails_like_mlflow(self):
        result = gate(
            PromotionPolicy(primary_metric="auc"), candidate_metrics={"auc": 0.9}, champion=Champion("1.0.0", {})
        )
        assert not result.passed and "has no 'auc'" in result.detail

    def test_guard_metrics_tolerate_a_bounded_worsening(self):
        policy = PromotionPolicy(primary_metric="auc", guard_metrics={"recall": 0.02, "latency_p95_ms": 5})
        champion = Champion("1.0.0", {"auc": 0.90, "recall": 0.80, "latency_p95_ms": 40})
        ok = {"auc": 0.91, "recall": 0.79, "latency_p95_ms": 44}
        assert gate(policy, candidate_metrics=ok, champion=champion).passed
        bad = gate(policy, candidate_metrics={**ok, "recall": 0.70, "latency_p95_ms": 50}, champion=champion)
        assert not bad.passed and "guard recall" in bad.detail and "guard latency_p95_ms" in bad.detail


class TestOtherGates:
    def run(self, gate_name, policy=None, **inputs):
        return evaluate_gates(
            policy or PromotionPolicy(), GateInputs(target_stage="production", **inputs), [gate_name]
        )[0]

    def test_required_metrics(self):
        policy = PromotionPolicy(primary_metric="auc", required_metrics=("precision", "recall"))
        result = self.run("required_metrics", policy, candidate_metrics={"auc": 0.9, "precision": float("nan")})
        assert not result.passed and result.observed == ["precision", "recall"]
        assert self.run("required_metrics", policy, candidate_metrics={"auc": 1, "precision": 1, "recall": 1}).passed

    def test_staging_soak(self):
        policy = PromotionPolicy(min_hours_in_staging=24)
        assert not self.run("staging_soak", policy, candidate_metrics={}, hours_in_staging=3.5).passed
        assert not self.run("staging_soak", policy, candidate_metrics={}, hours_in_staging=None).passed
        assert self.run("staging_soak", policy, candidate_metrics={}, hours_in_staging=30).passed

    def test_open_alerts_block_only_blocking_severities(self):
        alerts = [{"severity": "medium", "title": "slow"}]
        assert self.run(
            "open_alerts", candidate_metrics={}, staging_deployments=("stg",), blocking_alerts=alerts
        ).passed
        alerts.append({"severity": "critical", "title": "errors"})
        result = self.run("open_alerts", candidate_metrics={}, staging_deployments=("stg",), blocking_alerts=alerts)
        assert not result.passed and "critical: errors" in result.detail

    @pytest.mark.parametrize("gate_name", ["open_alerts", "drift"])
    def test_no_staging_deployment_is_no_evidence_unless_the_policy_says_so(self, gate_name):
        result = self.run(gate_name, candidate_metrics={})
        assert not result.passed and result.detail.startswith("no evidence: no staging deployment serves it")
        relaxed = self.run(gate_name, PromotionPolicy(require_staging_deployment=False), candidate_metrics={})
        assert relaxed.passed and "require_staging_deployment: false" in relaxed.detail

    def drift(self, report, policy=None):
        return self.run(
            "drift", policy, candidate_metrics={}, staging_deployments=("stg",), drift_reports={"stg": report}
        )

    def test_drift(self):
        fresh = {
            "is_drift_detected": False,
            "drift_score": 0.0,
            "period_end": "2026-11-24T10:00:00Z",
            "age_hours": 2.0,
            "incomplete_columns": [],
        }
        assert self.drift(fresh).passed
        drifted = self.drift({**fresh, "is_drift_detected": True})
        assert not drifted.passed and "detected drift" in drifted.detail
        assert self.drift({**fresh, "is_drift_detected": True}, PromotionPolicy(require_no_drift=False)).passed

    @pytest.mark.parametrize(
        ("report", "says"),
        [
            (None, "no drift report for staging deployment stg"),
            ({"age_hours": 30.0}, "ended 30.0 h ago, older than 24 h"),
            ({"incomplete_columns": ["amount", "age"]}, "is incomplete (untested: amount, age)"),
        ],
    )
    def test_missing_stale_or_incomplete_reports_are_no_evidence(self, report, says):
        fresh = {"is_drift_detected": False, "period_end": "x", "age_hours": 2.0, "incomplete_columns": []}
        report = None if report is None else {**fresh, **report}
        result = self.drift(report)
        assert not result.passed and result.detail.startswith("no evidence: ") and says in result.detail
        relaxed = self.drift(report, PromotionPolicy(require_drift_report=False))
        assert relaxed.passed and says in relaxed.detail and "require_drift_report: false" in relaxed.detail
        assert self.drift(
            report and {**report, "age_hours": 30.0}, PromotionPolicy(max_drift_report_age_hours=48)
        ).passed is (report is not None and not report["incomplete_columns"])


class TestGatesFor:
    def test_production_gets_every_gate_staging_its_configured_ones_others_none(self):
        policy = PromotionPolicy(staging_gates=("required_metrics", "champion_challenger"))
        assert len(gates_for(policy, "production", "promotion")) == 5
        assert gates_for(policy, "staging", "promotion") == ("required_metrics", "champion_challenger")
        assert gates_for(policy, "staging", "demotion") == ()
        assert gates_for(policy, "archived", "archive") == ()


def test_artifact_keys_are_content_addressed_and_safe():
    key = artifact_key("acme", "fraud", "Credit Card Fraud Model", "1.0.0", "ab" * 32, "model v1.pkl")
    assert key == f"models/acme/fraud/credit-card-fraud-model/1.0.0/{'ab' * 8}/model_v1.pkl"


def test_markdown_lists_every_gate():
    md = promotion_markdown(
        model="m",
        version="1.1.0",
        from_stage="staging",
        to_stage="production",
        status="rejected",
        gates=[{"gate": "drift", "passed": False, "detail": "a|b"}],
        forced=False,
    )
    assert "❌ rejected" in md and "| drift | FAIL | a\\|b |" in md
