"""tasks.drift.verdicts and tasks.drift.arrays: per-column verdicts identical to Evidently 0.7.23's DataDriftPreset, and the
pure helpers."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.errors import InvalidInput
from tasks.drift.arrays import (
    EVIDENTLY_DISPLAY_NAMES,
    METHODS,
    STAT_TESTS,
    chisquare_p_value,
    default_method,
    evidently_std,
    fill_empty_bins,
    histogram_counts,
    jensenshannon_value,
    normed_wasserstein,
    psi_value,
    sturges_bin_edges,
    z_test_p_value,
)
from tasks.drift.verdicts import ColumnDrift, column_drift, dataset_drift, infer_column_types, summarize

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently has telemetry; set before it is imported
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.core import ColumnType as EvidentlyColumnType
from evidently.presets import DataDriftPreset


class EvidentlyColumn(NamedTuple):
    method: str
    score: float
    threshold: float
    drifted: bool


class EvidentlyResult(NamedTuple):
    columns: dict[str, EvidentlyColumn]
    drifted_count: int


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    data_definition: DataDefinition | None = None,
) -> EvidentlyResult:
    """Evidently's own per-column verdicts: `Report([DataDriftPreset(...)])`, read from `snapshot.dict()`.

    Each column is a `ValueDrift` metric: its config holds the column, the method (the display name when
    auto-chosen, the given name otherwise) and the threshold, its value is the score; its "drift" test fails
    when the column drifted. `DriftedColumnsCount` holds the count of drifted columns.
    """
    preset = DataDriftPreset(
        per_column_method=dict(methods) if methods else None,
        per_column_threshold=dict(thresholds) if thresholds else None,
    )
    if data_definition is not None:
        ref_ds = Dataset.from_pandas(reference, data_definition=data_definition)
        cur_ds = Dataset.from_pandas(current, data_definition=data_definition)
    else:
        ref_ds, cur_ds = reference, current
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([preset], include_tests=True).run(cur_ds, ref_ds)
    result = snapshot.dict()
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in result["tests"] if t["id"] == "drift"}
    columns: dict[str, EvidentlyColumn] = {}
    drifted_count = -1
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"] == "evidently:metric_v2:DriftedColumnsCount":
            drifted_count = int(metric["value"]["count"])
        elif config["type"] == "evidently:metric_v2:ValueDrift":
            method = EVIDENTLY_DISPLAY_NAMES.get(config["method"], config["method"])
            columns[config["column"]] = EvidentlyColumn(
                method, float(metric["value"]), float(config["threshold"]), failed[metric["id"]]
            )
    return EvidentlyResult(columns, drifted_count)


def assert_same_verdicts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    column_types: Mapping[str, str] | None = None,
    expect_methods: Mapping[str, str] | None = None,
) -> tuple[dict[str, ColumnDrift], EvidentlyResult]:
    """Run both; every column: same method, score (1e-9 abs, or rel for large), threshold and verdict."""
    definition = None
    if column_types is not None:
        definition = DataDefinition(
            numerical_columns=[c for c, t in column_types.items() if t == "num"],
            categorical_columns=[c for c, t in column_types.items() if t == "cat"],
        )
    theirs = run_evidently(reference, current, methods=methods, thresholds=thresholds, data_definition=definition)
    ours = {
        c.column: c
        for c in dataset_drift(
            reference,
            current,
            methods=methods,
            thresholds=thresholds,
            column_types=column_types,  # type: ignore[arg-type]
            columns=list(column_types) if column_types is not None else None,
        ).columns
    }
    assert set(ours) == set(theirs.columns)
    for name, mine in ours.items():
        expected = theirs.columns[name]
        assert mine.error is None, (name, mine.error)
        got = (mine.method, mine.threshold, mine.drifted)
        assert got == (expected.method, expected.threshold, expected.drifted), (name, got, expected)
        assert mine.score == pytest.approx(expected.score, rel=1e-9, abs=1e-9), (name, mine.score, expected.score)
    if expect_methods is not None:
        assert {name: ours[name].method for name in expect_methods} == dict(expect_methods)
    return ours, theirs


def numeric_frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, n),
            "wide": rng.lognormal(shift, 1.0, n) * 1e6,
            "single": rng.normal(shift, 2.0, n).astype(np.float32),
            "unique3": rng.integers(0, 3, n).astype(float),
            "unique5": rng.integers(0, 5, n).astype(float) + shift,
            "unique6": rng.integers(0, 6, n).astype(float),
            "binary": (rng.random(n) < 0.4 + shift / 4).astype(float),
            "integers": rng.integers(0, 60, n) + round(shift * 5),
        }
    )


def categorical_frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    weights = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 else np.array([0.25, 0.25, 0.25, 0.25])
    return pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue", "black"], n, p=weights),
            "yes_no": rng.choice(["yes", "no"], n, p=[0.5 + shift / 5, 0.5 - shift / 5]),
            "small_int": rng.integers(0, 7, n),
            "flag": rng.random(n) < 0.3 + shift / 5,
        }
    )


def mixed(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.concat([numeric_frame(rng, n, shift), categorical_frame(rng, n, shift)], axis=1)


class TestInferColumnTypes:
    def test_types_match_evidentlys_data_definition(self) -> None:
        rng = np.random.default_rng(1)
        n = 200
        frame = mixed(rng, n).assign(
            text=[f"free text {i}" for i in range(n)],
            when=pd.date_range("2024-01-01", periods=n, freq="h"),
            nothing=[None] * n,
            category=pd.Categorical(rng.choice(["a", "b"], n)),
            nullable=pd.array(rng.integers(0, 50, n), dtype="Int64"),
            strings=pd.array(rng.choice(["p", "q", "r"], n), dtype="string"),
        )
        definition = Dataset.from_pandas(frame).data_definition
        expected = {c: "num" for c in definition.get_numerical_columns()}
        expected |= {c: "cat" for c in definition.get_categorical_columns()}
        assert infer_column_types(frame) == expected
        assert expected["small_int"] == "cat" and expected["integers"] == "num" and "text" not in expected

    def test_integers_with_at_most_ten_values_are_categorical(self) -> None:
        frame = pd.DataFrame({"ten": np.arange(100) % 10, "eleven": np.arange(100) % 11})
        assert infer_column_types(frame) == {"ten": "cat", "eleven": "num"}

    def test_types_come_from_current_like_evidently_and_reference_only_columns_last(self) -> None:
        reference = pd.DataFrame({"x": np.arange(100) % 50, "gone": np.linspace(0, 1, 100)})
        current = pd.DataFrame({"x": np.arange(100) % 3})
        assert list(infer_column_types(reference, current).items()) == [("x", "cat"), ("gone", "num")]


class TestColumnDriftAgainstEvidently:
    """Scenarios run through Evidently's Report and through `dataset_drift`: per-column results identical."""

    @pytest.mark.parametrize("n", [30, 5000])
    def test_same_distribution_gives_evidentlys_verdicts(self, n: int) -> None:
        rng = np.random.default_rng(n)
        assert_same_verdicts(mixed(rng, n), mixed(rng, n))

    @pytest.mark.parametrize(("n_reference", "n_current"), [(30, 12), (20_000, 10_000)])
    def test_shifted_distribution_gives_evidentlys_verdicts(self, n_reference: int, n_current: int) -> None:
        rng = np.random.default_rng(n_reference + 7)
        ours, theirs = assert_same_verdicts(mixed(rng, n_reference), mixed(rng, n_current, shift=0.5))
        assert any(c.drifted for c in ours.values())
        assert sum(c.drifted for c in ours.values()) == theirs.drifted_count

    def test_default_test_follows_reference_size_and_unique_values_of_both_sides(self) -> None:
        rng = np.random.default_rng(3)
        # "unique5" is shifted by 0.5 in current: 5 values per side, 10 together, so it counts as continuous;
        # "same5" has the same 5 values on both sides
        small = {"normal": "ks", "unique3": "chisquare", "unique5": "ks", "unique6": "ks", "binary": "z"}
        small |= {"colour": "chisquare", "yes_no": "z", "flag": "z", "small_int": "chisquare"}
        reference, current = mixed(rng, 1000), mixed(rng, 400, 0.5)
        reference["same5"], current["same5"] = reference["unique5"] - 0.0, current["unique5"] - 0.5
        assert_same_verdicts(reference, current, expect_methods=small | {"same5": "chisquare"})
        large = {"normal": "wasserstein", "unique3": "jensenshannon", "unique5": "wasserstein"}
        large |= {"unique6": "wasserstein", "binary": "jensenshannon", "colour": "jensenshannon"}
        reference, current = mixed(rng, 1001), mixed(rng, 400, 0.5)
        reference["same5"], current["same5"] = reference["unique5"] - 0.0, current["unique5"] - 0.5
        assert_same_verdicts(reference, current, expect_methods=large | {"same5": "jensenshannon"})

    def test_reference_rows_are_counted_after_dropping_missing_values(self) -> None:
        rng = np.random.default_rng(4)
        reference = pd.DataFrame({"x": rng.normal(0, 1, 1001), "c": rng.choice(["a", "b", "c"], 1001)})
        reference.loc[0, "x"] = np.nan
        reference.loc[1, "c"] = None
        current = pd.DataFrame({"x": rng.normal(0, 1, 500), "c": rng.choice(["a", "b", "c"], 500)})
        ours, _ = assert_same_verdicts(reference, current, expect_methods={"x": "ks", "c": "chisquare"})
        assert (ours["x"].reference_count, ours["x"].reference_missing) == (1000, 1)

    def test_missing_and_infinite_values_are_dropped_like_evidently(self) -> None:
        rng = np.random.default_rng(5)

        def dirty(n: int, shift: float) -> pd.DataFrame:
            x = rng.normal(shift, 1, n)
            x[rng.random(n) < 0.1] = np.nan
            x[rng.random(n) < 0.05] = np.inf
            x[rng.random(n) < 0.05] = -np.inf
            only_inf = rng.normal(shift, 1, n)
            only_inf[:7] = np.inf
            labels = rng.choice(np.array(["a", "b", "c", None, np.nan], dtype=object), n)
            return pd.DataFrame({"x": x, "only_inf": only_inf, "labels": labels})

        for n in (300, 3000):
            ours, _ = assert_same_verdicts(dirty(n, 0), dirty(n, 0.3))
            assert ours["only_inf"].reference_missing == 7
            assert ours["x"].reference_count + ours["x"].reference_missing == n

    def test_infinite_values_are_dropped_even_where_evidentlys_column_count_keeps_them(self) -> None:
        rng = np.random.default_rng(18)
        x = rng.normal(0, 1, 2000)
        x[:3] = np.inf
        ours, theirs = assert_same_verdicts(pd.DataFrame({"x": x}), pd.DataFrame({"x": rng.normal(1, 1, 2000)}))
        assert ours["x"].drifted and ours["x"].reference_missing == 3
        assert theirs.drifted_count == 0  # DriftedColumnsCount's legacy path kept the infs: NaN distance

    def test_constant_columns_give_evidentlys_result(self) -> None:
        for n in (100, 2000):
            reference = pd.DataFrame({"same": np.full(n, 3.0), "moved": np.full(n, 1.5), "label": ["k"] * n})
            current = pd.DataFrame({"same": np.full(n, 3.0), "moved": np.full(n, 2.5), "label": ["k"] * n})
            ours, _ = assert_same_verdicts(reference, current)
            assert not ours["same"].drifted and ours["moved"].drifted

    def test_constant_reference_uses_the_wasserstein_std_floor(self) -> None:
        rng = np.random.default_rng(6)
        reference = pd.DataFrame({"x": np.r_[np.full(1999, 1.0), 1.0 + 1e-6]})
        current = pd.DataFrame({"x": rng.normal(1, 0.001, 2000)})
        ours, _ = assert_same_verdicts(reference, current)
        assert ours["x"].method == "wasserstein"

    def test_binned_psi_and_jensenshannon_on_integers_match(self) -> None:
        rng = np.random.default_rng(8)
        reference = pd.DataFrame({"i": rng.integers(0, 40, 3000), "f": rng.normal(0, 1, 3000)})
        current = pd.DataFrame({"i": rng.integers(5, 45, 2000), "f": rng.normal(0.1, 1.2, 2000)})
        for method in ("psi", "jensenshannon"):
            assert_same_verdicts(reference, current, methods={"i": method, "f": method})

    @pytest.mark.parametrize("n", [40, 3000])
    def test_every_method_override_matches_evidently(self, n: int) -> None:
        rng = np.random.default_rng(100 + n)
        numerical = ["normal", "single", "unique3", "unique6", "binary", "integers"]
        categorical = ["colour", "yes_no", "small_int", "flag"]
        reference = mixed(rng, n)[numerical + categorical]
        current = mixed(rng, n, shift=0.4)[numerical + categorical]
        for num_method, cat_method in zip(
            ("ks", "wasserstein", "psi", "jensenshannon"), ("chisquare", "z", "psi", "jensenshannon"), strict=True
        ):
            methods = {c: num_method for c in numerical} | {c: cat_method for c in categorical}
            ours, _ = assert_same_verdicts(reference, current, methods=methods)
            assert {c.method for c in ours.values()} == {num_method, cat_method}

    def test_threshold_overrides_match_evidently(self) -> None:
        rng = np.random.default_rng(9)
        names = ["normal", "unique3", "colour", "yes_no", "integers"]
        reference, current = mixed(rng, 600)[names], mixed(rng, 600, shift=0.1)[names]
        thresholds = {"normal": 0.5, "unique3": 0.9, "colour": 1e-12, "yes_no": 0.99, "integers": 0.2}
        methods = {"normal": "psi", "integers": "wasserstein"}
        ours, _ = assert_same_verdicts(reference, current, methods=methods, thresholds=thresholds)
        assert ours["normal"].threshold == 0.5 and ours["integers"].threshold == 0.2

    def test_verdict_at_exactly_the_threshold_uses_evidentlys_comparison(self) -> None:
        rng = np.random.default_rng(10)
        names = ["normal", "colour", "wide"]
        reference, current = mixed(rng, 500)[names], mixed(rng, 500, shift=0.2)[names]
        first = dataset_drift(reference, current, methods={"normal": "ks", "colour": "chisquare", "wide": "psi"})
        scores = {c.column: c.score for c in first.columns}
        thresholds = {name: scores[name] for name in ("normal", "colour", "wide")}
        ours, _ = assert_same_verdicts(
            reference, current, methods={"normal": "ks", "colour": "chisquare", "wide": "psi"}, thresholds=thresholds
        )
        # ks: p <= threshold drifts; chisquare: p < threshold does not; distances: >= threshold drifts
        assert (ours["normal"].drifted, ours["colour"].drifted, ours["wide"].drifted) == (True, False, True)

    def test_given_column_types_match_evidentlys_data_definition(self) -> None:
        rng = np.random.default_rng(11)
        names = ["small_int", "integers", "normal", "unique3"]
        reference, current = mixed(rng, 1500)[names], mixed(rng, 900, shift=0.3)[names]
        types = {"small_int": "num", "integers": "cat", "normal": "num", "unique3": "cat"}
        ours, _ = assert_same_verdicts(reference, current, column_types=types)
        assert ours["small_int"].column_type == "num" and ours["integers"].method == "jensenshannon"


class TestColumnDrift:
    def test_accepts_numpy_arrays_and_series_alike(self) -> None:
        rng = np.random.default_rng(12)
        a, b = rng.normal(0, 1, 500), rng.normal(0.2, 1, 400)
        from_arrays = column_drift("x", a, b, column_type="num")
        assert from_arrays == column_drift("x", pd.Series(a), pd.Series(b), column_type="num")
        assert from_arrays.method == "ks" and from_arrays.threshold == 0.05

    def test_unknown_method_raises_invalid_input_naming_column_and_allowed_methods(self) -> None:
        with pytest.raises(InvalidInput, match="column 'x'.*'kolmogorov'.*ks, chisquare, z, wasserstein"):
            column_drift("x", np.ones(3), np.ones(3), column_type="num", method="kolmogorov")

    @pytest.mark.parametrize(("column_type", "method"), [("num", "chisquare"), ("num", "z"), ("cat", "ks")])
    def test_method_evidently_refuses_for_the_type_raises_invalid_input(self, column_type: str, method: str) -> None:
        with pytest.raises(InvalidInput, match=f"'{method}' does not apply"):
            column_drift("x", np.ones(3), np.ones(3), column_type=column_type, method=method)  # type: ignore[arg-type]

    def test_evidently_refuses_the_same_methods(self) -> None:
        frame = pd.DataFrame({"x": np.linspace(0, 1, 50)})
        with pytest.raises(ValueError, match="isn't applicable"):
            run_evidently(frame, frame, methods={"x": "chisquare"})

    def test_nan_threshold_raises_invalid_input(self) -> None:
        with pytest.raises(InvalidInput, match="threshold"):
            column_drift("x", np.ones(3), np.ones(3), column_type="num", threshold=math.nan)

    def test_all_missing_side_gives_an_error_where_evidently_raises(self) -> None:
        frame = pd.DataFrame({"x": np.full(20, np.nan)})
        with pytest.raises(ValueError, match="empty column"):
            run_evidently(frame, frame)
        result = column_drift("x", np.ones(20), np.array([np.nan, np.inf, -np.inf]), column_type="num")
        assert result.error == "no non-missing values in current data"
        assert (result.drifted, math.isnan(result.score), result.current_missing) == (False, True, 3)
        labels = column_drift("c", np.array([None, np.nan], dtype=object), np.array(["a"]), column_type="cat")
        assert labels.error == "no non-missing values in reference data"

    def test_non_numeric_values_in_numerical_column_give_an_error(self) -> None:
        result = column_drift("x", np.array(["a", "b"], dtype=object), np.ones(2), column_type="num")
        assert result.error is not None and "not numeric" in result.error

    def test_new_category_in_current_gives_chisquare_p_value_zero(self) -> None:
        reference = np.array(["a", "b", "c"] * 20, dtype=object)
        current = np.array(["a", "b", "c", "d"] * 15, dtype=object)
        result = column_drift("c", reference, current, column_type="cat")
        assert (result.method, result.score, result.drifted) == ("chisquare", 0.0, True)

    def test_to_json_is_json_safe(self) -> None:
        result = column_drift("x", np.ones(5), np.full(5, np.nan), column_type="num")
        payload = result.to_json()
        assert payload["score"] is None and payload["error"]
        json.dumps(payload, allow_nan=False)


class TestDatasetDrift:
    def test_share_counts_only_columns_without_error(self) -> None:
        rng = np.random.default_rng(13)
        reference = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300), "gone": np.ones(300)})
        current = pd.DataFrame({"a": rng.normal(2, 1, 300), "b": rng.normal(0, 1, 300), "empty": np.nan})
        reference["empty"] = rng.normal(0, 1, 300)
        result = dataset_drift(reference, current)
        by_name = {c.column: c for c in result.columns}
        assert by_name["gone"].error == "column missing in current data"
        assert by_name["empty"].error == "no non-missing values in current data"
        assert (result.number_of_columns, result.number_of_drifted_columns) == (4, 1)
        assert (result.drift_share, result.dataset_drift) == (0.5, True)
        json.dumps(result.to_json(), allow_nan=False)

    def test_column_only_in_current_gives_an_error(self) -> None:
        reference = pd.DataFrame({"a": np.arange(20.0)})
        current = pd.DataFrame({"a": np.arange(20.0), "new": np.arange(20.0)})
        result = dataset_drift(reference, current)
        assert [c.error for c in result.columns] == [None, "column missing in reference data"]

    def test_drift_threshold_is_our_rule_not_evidentlys_half(self) -> None:
        columns = [_column(i, drifted=i < 1) for i in range(10)]
        assert summarize(columns, 0.1).dataset_drift is True
        assert summarize(columns, 0.5).dataset_drift is False
        assert dataset_drift(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]})).drift_threshold == 0.1

    def test_threads_give_the_same_result_as_one_thread(self) -> None:
        rng = np.random.default_rng(14)
        reference, current = mixed(rng, 3000), mixed(rng, 3000, shift=0.2)
        assert dataset_drift(reference, current, max_workers=4) == dataset_drift(reference, current, max_workers=1)

    def test_options_for_columns_not_analysed_raise_invalid_input(self) -> None:
        frame = pd.DataFrame({"a": np.arange(20.0)})
        with pytest.raises(InvalidInput, match="'b'"):
            dataset_drift(frame, frame, methods={"b": "ks"})
        with pytest.raises(InvalidInput, match="not found"):
            dataset_drift(frame, frame, columns=["b"])
        with pytest.raises(InvalidInput, match="drift_threshold"):
            dataset_drift(frame, frame, drift_threshold=1.5)

    def test_unknown_method_raises_before_any_column_is_computed(self) -> None:
        frame = pd.DataFrame({"a": np.arange(20.0), "b": ["x", "y"] * 10})
        with pytest.raises(InvalidInput, match="column 'b'.*allowed: chisquare, z, jensenshannon, psi"):
            dataset_drift(frame, frame, methods={"b": "wasserstein"})

    def test_text_columns_are_skipped_unless_typed(self) -> None:
        frame = pd.DataFrame({"text": [f"t{i}" for i in range(50)], "a": np.arange(50.0)})
        assert [c.column for c in dataset_drift(frame, frame).columns] == ["a"]
        typed = dataset_drift(frame, frame, column_types={"text": "cat"})
        assert [c.column for c in typed.columns] == ["text", "a"]
        with pytest.raises(InvalidInput, match="inferred as text"):
            dataset_drift(frame, frame, columns=["text"])


def _column(i: int, *, drifted: bool) -> ColumnDrift:
    return ColumnDrift(f"c{i}", "num", "ks", 0.01 if drifted else 0.5, 0.05, drifted, 10, 10, 0, 0)


# --------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------


class TestDefaultMethod:
    @pytest.mark.parametrize(
        ("column_type", "rows", "unique", "expected"),
        [
            ("num", 1000, 2, "z"),
            ("num", 1000, 3, "chisquare"),
            ("num", 1000, 5, "chisquare"),
            ("num", 1000, 6, "ks"),
            ("num", 1001, 5, "jensenshannon"),
            ("num", 1001, 6, "wasserstein"),
            ("cat", 1000, 2, "z"),
            ("cat", 1000, 40, "chisquare"),
            ("cat", 1001, 2, "jensenshannon"),
        ],
    )
    def test_boundaries(self, column_type: str, rows: int, unique: int, expected: str) -> None:
        assert default_method(column_type, rows, unique) == expected  # type: ignore[arg-type]


class TestStatTest:
    def test_default_thresholds_and_column_types_are_evidentlys(self) -> None:
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

        for name, test in STAT_TESTS.items():
            theirs = _registered_stat_tests[name]
            assert sorted(t.value for t in theirs) == sorted(test.column_types)
            assert {t.default_threshold for t in theirs.values()} == {test.default_threshold}

    @pytest.mark.parametrize("name", METHODS)
    def test_drifted_at_exactly_the_threshold_agrees_with_evidently(self, name: str) -> None:
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

        rng = np.random.default_rng(17)
        column_type = STAT_TESTS[name].column_types[0]
        if column_type == "num":
            ref, cur = pd.Series(rng.normal(0, 1, 300)), pd.Series(rng.normal(0.2, 1, 300))
        else:
            ref, cur = pd.Series(rng.choice(["a", "b"], 300)), pd.Series(rng.choice(["a", "b"], 300, p=[0.6, 0.4]))
        (evidently_test,) = {id(t): t for t in _registered_stat_tests[name].values()}.values()
        kind = EvidentlyColumnType(column_type)
        score = evidently_test(ref, cur, kind, None).drift_score
        for threshold in (score, np.nextafter(score, 0), np.nextafter(score, 1)):
            expected = evidently_test(ref, cur, kind, threshold).drifted
            assert STAT_TESTS[name].drifted(score, float(threshold)) == bool(expected)


class TestSturgesBinEdges:
    @pytest.mark.parametrize("seed", range(6))
    def test_equals_numpy_histogram_bin_edges(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        for data in (
            rng.normal(0, 10 ** rng.integers(-3, 6), rng.integers(2, 50_000)),
            rng.integers(-(10 ** int(rng.integers(1, 6))), 10 ** int(rng.integers(1, 6)), rng.integers(2, 5000)),
            rng.integers(0, 3, 100),
        ):
            expected = np.histogram_bin_edges(data, bins="sturges")
            got = sturges_bin_edges(data.min(), data.max(), data.size, data.dtype)
            np.testing.assert_array_equal(got, expected)

    def test_constant_data_gets_one_unit_wide_range(self) -> None:
        np.testing.assert_array_equal(sturges_bin_edges(2.0, 2.0, 10, np.dtype(float)), [1.5, 2.5])


class TestHistogramCounts:
    def test_equals_numpy_histogram_including_the_closed_last_bin(self) -> None:
        rng = np.random.default_rng(15)
        values = np.round(rng.normal(0, 1, 5000), 1)
        edges = np.histogram_bin_edges(values, bins="sturges")
        np.testing.assert_array_equal(histogram_counts(np.sort(values), edges), np.histogram(values, edges)[0])


class TestFillEmptyBins:
    def test_small_shares_fill_with_a_millionth_of_the_smallest(self) -> None:
        filled = fill_empty_bins(np.array([0.0, 0.00005, 0.99995]))
        assert filled[0] == 0.00005 / 10**6

    def test_larger_shares_fill_with_one_ten_thousandth(self) -> None:
        np.testing.assert_array_equal(fill_empty_bins(np.array([0.0, 0.5, 0.5])), [0.0001, 0.5, 0.5])

    def test_boundary_share_of_exactly_one_ten_thousandth_counts_as_small(self) -> None:
        assert fill_empty_bins(np.array([0.0, 0.0001, 0.9999]))[0] == 0.0001 / 10**6

    def test_no_empty_bins_unchanged(self) -> None:
        np.testing.assert_array_equal(fill_empty_bins(np.array([0.2, 0.8])), [0.2, 0.8])


class TestPsiValue:
    def test_identical_shares_give_zero(self) -> None:
        assert psi_value(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0

    def test_known_value(self) -> None:
        ref, cur = np.array([0.5, 0.5]), np.array([0.25, 0.75])
        assert psi_value(ref, cur) == pytest.approx(0.25 * math.log(2) - 0.25 * math.log(2 / 3))

    def test_empty_bin_on_one_side_uses_the_epsilon(self) -> None:
        ref, cur = np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.4, 0.2])
        expected = 0.1 * math.log(0.5 / 0.4) * 2 + (0.0001 - 0.2) * math.log(0.0001 / 0.2)
        assert psi_value(ref, cur) == pytest.approx(expected)


class TestJensenshannonValue:
    def test_disjoint_shares_give_sqrt_ln2(self) -> None:
        assert jensenshannon_value(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(math.sqrt(math.log(2)))


class TestNormedWasserstein:
    @pytest.mark.parametrize("seed", range(4))
    def test_bit_identical_to_scipy_with_and_without_ties(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        a, b = rng.normal(0, 1, rng.integers(1, 4000)), rng.normal(0.3, 2, rng.integers(1, 4000))
        for u, v in ((a, b), (np.round(a, 1), np.round(b, 1)), (a.astype(int), b.astype(int))):
            expected = stats.wasserstein_distance(u, v)
            assert normed_wasserstein(np.sort(u), np.sort(v), 1.0) == expected

    def test_divides_by_the_reference_std_floored_at_one_thousandth(self) -> None:
        u, v = np.array([0.0, 0.0]), np.array([1.0, 1.0])
        assert normed_wasserstein(u, v, 0.0) == pytest.approx(1000.0)
        assert normed_wasserstein(u, v, 2.0) == pytest.approx(0.5)


class TestEvidentlyStd:
    def test_equals_numpy_std_of_a_pandas_series(self) -> None:
        rng = np.random.default_rng(16)
        for values in (
            rng.normal(5, 3, 10_001),
            rng.normal(5, 3, 10_001).astype(np.float32),
            rng.integers(-100, 100, 999),
            np.array([True, False, True]),
        ):
            assert evidently_std(values) == float(np.std(pd.Series(values)))


class TestChisquarePValue:
    def test_scales_reference_counts_to_the_current_total(self) -> None:
        ref, cur = np.array([10, 20, 30]), np.array([10, 10, 10])
        expected = stats.chisquare(cur, ref * (30 / 60)).pvalue
        assert chisquare_p_value(ref, cur) == expected

    def test_category_absent_from_reference_gives_zero(self) -> None:
        assert chisquare_p_value(np.array([5, 5, 0]), np.array([3, 3, 4])) == 0.0


class TestZTestPValue:
    def test_equal_proportions_give_one(self) -> None:
        assert z_test_p_value(20, 100, 10, 50) == pytest.approx(1.0)

    def test_matches_the_pooled_two_proportion_formula(self) -> None:
        p1, p2, pooled = 30 / 100, 50 / 100, 80 / 200
        z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
        assert z_test_p_value(30, 100, 50, 100) == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
