"""Data drift statistics: per-column tests and the dataset verdict, matching Evidently 0.7.23's defaults.

Pure functions, no I/O: frames and columns in, verdicts out; the statistics on arrays are in `tasks.drift.arrays`.
Every per-column result (test chosen, score, threshold, verdict) is the one Evidently 0.7.23's
`Report([DataDriftPreset(...)])` gives for the same frames (its `ValueDrift` metrics); the tests in
`tests/tasks/test_drift_stats.py` check this against Evidently itself. Evidently is never imported here: it is a
dev-only dependency.

What Evidently does, and what this module does:

* Column types, when not given, are inferred like `evidently.Dataset.from_pandas` (its `infer_column_type`)
  infers them, from the *current* frame (Evidently's data definition is the current dataset's): float ->
  numerical; int -> categorical when at most 10 distinct values, else numerical; bool and `category` ->
  categorical; `object`/`string` holding strings -> categorical, or text when more than half of the non-missing
  values are distinct; anything else (datetime, nullable `Int64`/`Float64`/`boolean`, lists, all-missing
  `object`) is not analysed. Text columns are not analysed here (Evidently trains a classifier on them).
* Missing (NaN, None, NA) and infinite values are dropped from each side before testing, as Evidently's
  per-column `ValueDrift` does. (Evidently's own `DriftedColumnsCount` goes through an older path that keeps
  ±inf in a column without NaN, so its count can disagree with its per-column verdicts; this module follows
  the per-column verdicts.)
* The default test, the tests themselves, their thresholds and the types each applies to are Evidently's; they
  live in `tasks.drift.arrays`, with the samples they run on. A method Evidently does not allow for the column
  type (it raises `StatTestInvalidFeatureTypeError`) is an `InvalidInput` here.
* Where Evidently raises for one column and so fails the whole report (no values left on one side, a column
  missing from the reference, non-numeric values in a numerical column), the column gets an `error` here and
  the other columns are still computed. A column only in the reference, which Evidently silently skips, gets
  an `error` too. A constant column is not an error: Evidently gives a result (Z-test p-value 1, distance 0,
  or Wasserstein over the 0.001 floor) and so does this module.

Columns are computed in threads (`max_workers`, by default up to 4 for frames of a million values or more);
each worker holds a few arrays of one column's size.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from tasks.drift.arrays import (
    COLUMN_TYPES,
    METHODS,
    STAT_TESTS,
    ColumnType,
    NumericSample,
    categorical_sample,
    default_method,
    keyed_score,
    numeric_score,
    numeric_values,
)

# Evidently's `INTEGER_CARDINALITY_LIMIT`: integer columns with at most this many distinct values are categorical.
INTEGER_CARDINALITY_LIMIT = 10
# Threads pay off above this many values (reference + current) per dataset.
PARALLEL_MIN_VALUES = 1_000_000
# Each worker holds a few arrays of one column's size; more workers than this add memory, not speed.
MAX_AUTO_WORKERS = 4


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column. `error` set means no test ran: then `drifted` is False, `score` NaN."""

    column: str
    column_type: ColumnType
    method: str  # "" when an error stopped the test before it could be chosen
    score: float
    threshold: float
    drifted: bool
    reference_count: int  # non-missing, finite values used
    current_count: int
    reference_missing: int  # NaN/None/NA/±inf dropped
    current_missing: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN and infinities become None)."""
        return {
            "column": self.column,
            "column_type": self.column_type,
            "method": self.method,
            "score": _json_float(self.score),
            "threshold": _json_float(self.threshold),
            "drifted": self.drifted,
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "reference_missing": self.reference_missing,
            "current_missing": self.current_missing,
            "error": self.error,
        }


@dataclass(frozen=True)
class DatasetDrift:
    """Per-column results and the dataset verdict: drifted share of the columns without error >= threshold."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float
    drift_threshold: float
    dataset_drift: bool
    number_of_columns: int
    number_of_drifted_columns: int
    # columns not analysed because of their inferred type (text, datetime, ...): (name, type)
    skipped_columns: tuple[tuple[str, str], ...] = ()

    @property
    def number_of_failed_columns(self) -> int:
        """Columns that have an `error` (not counted in `drift_share`)."""
        return sum(1 for c in self.columns if c.error is not None)

    @property
    def number_of_analysed_columns(self) -> int:
        """Columns without an `error`: the denominator of `drift_share`."""
        return self.number_of_columns - self.number_of_failed_columns

    def summary(self) -> str:
        """One line: drifted of analysed, what could not be analysed and what was skipped, the verdict."""
        text = (
            f"{self.number_of_drifted_columns} of {self.number_of_analysed_columns} analysed columns drifted "
            f"({self.drift_share:.0%})"
        )
        if self.number_of_failed_columns:
            errors = [c.error or "" for c in self.columns if c.error]
            missing = sum(1 for e in errors if e.startswith("column missing"))
            other = len(errors) - missing
            text += "".join(f"; {n} {what}" for n, what in ((missing, "missing"), (other, "failed")) if n)
        if self.skipped_columns:
            text += "; skipped " + ", ".join(f"{name} ({kind})" for name, kind in self.skipped_columns)
        return f"{text}; dataset drift: {'yes' if self.dataset_drift else 'no'} (threshold {self.drift_threshold:.0%})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of the verdict and every column."""
        return {
            "drift_share": _json_float(self.drift_share),
            "drift_threshold": _json_float(self.drift_threshold),
            "dataset_drift": self.dataset_drift,
            "number_of_columns": self.number_of_columns,
            "number_of_drifted_columns": self.number_of_drifted_columns,
            "number_of_failed_columns": self.number_of_failed_columns,
            "skipped_columns": [{"column": name, "inferred_type": kind} for name, kind in self.skipped_columns],
            "columns": [c.to_json() for c in self.columns],
        }


# ---------------------------------------------------------------------------------------------------------
# Column type inference (evidently.core.datasets.infer_column_type)
# ---------------------------------------------------------------------------------------------------------


def infer_column_type(values: pd.Series) -> Literal["num", "cat", "text", "datetime", "list", "unknown"]:
    """Evidently's type of one column from its dtype and values (`evidently.core.datasets.infer_column_type`)."""
    name = values.dtype.name
    if name.startswith("float"):
        return "num"
    if name.startswith("int"):
        return "cat" if values.nunique() <= INTEGER_CARDINALITY_LIMIT else "num"
    if name in ("string", "str"):
        return "text" if values.nunique() > values.count() * 0.5 else "cat"
    if name == "object":
        present = values.dropna()
        if present.size == 0:
            return "unknown"
        first, last = present.iloc[0], present.iloc[-1]
        if isinstance(first, str) and isinstance(last, str):
            return "text" if present.nunique() > present.size * 0.5 else "cat"
        if isinstance(first, list | tuple) and isinstance(last, list | tuple):
            return "list"
        return "unknown"
    if name in ("bool", "category"):
        return "cat"
    if name.startswith("datetime"):
        return "datetime"
    return "unknown"


def infer_column_types(reference: pd.DataFrame, current: pd.DataFrame | None = None) -> dict[str, ColumnType]:
    """The numerical and categorical columns as Evidently infers them, in frame order.

    Evidently's report takes its data definition from the current frame, so when `current` is given its
    columns are typed from `current`; columns only in `reference` are typed from `reference` and come last.
    Columns Evidently would type as text, datetime, list or unknown are left out.
    """
    frames = [reference] if current is None else [current, reference]
    result: dict[str, ColumnType] = {}
    seen: set[Any] = set()
    for frame in frames:
        for label in frame.columns:
            if label in seen:
                continue
            seen.add(label)
            kind = infer_column_type(frame[label])
            if kind in COLUMN_TYPES:
                result[str(label)] = kind  # type: ignore[assignment]
    return result


# ---------------------------------------------------------------------------------------------------------
# One column
# ---------------------------------------------------------------------------------------------------------


def column_drift(
    column: str,
    reference: pd.Series | np.ndarray,
    current: pd.Series | np.ndarray,
    *,
    column_type: ColumnType,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Drift of one column: Evidently's default test for the data unless `method` names one, and its verdict.

    Returns a `ColumnDrift` with `error` set (no exception) when a side has no usable values or a numerical
    column holds non-numeric values. Raises `InvalidInput` for an unknown column type, an unknown method, a
    method Evidently does not allow for the column type, or a NaN threshold.
    """
    _check_options(str(column), column_type, method, threshold)
    return _column_drift(
        str(column), _as_array(reference, column_type), _as_array(current, column_type), column_type, method, threshold
    )


def _check_options(column: str, column_type: str, method: str | None, threshold: float | None) -> None:
    if column_type not in COLUMN_TYPES:
        raise InvalidInput(f"column {column!r}: unknown column type {column_type!r}; allowed: 'num', 'cat'")
    if method is not None:
        test = STAT_TESTS.get(method)
        if test is None:
            raise InvalidInput(f"column {column!r}: unknown drift method {method!r}; allowed: {', '.join(METHODS)}")
        if column_type not in test.column_types:
            allowed = [name for name, t in STAT_TESTS.items() if column_type in t.column_types]
            raise InvalidInput(
                f"column {column!r}: drift method {method!r} does not apply to "
                f"{'numerical' if column_type == 'num' else 'categorical'} columns; allowed: {', '.join(allowed)}"
            )
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or math.isnan(threshold)
    ):
        raise InvalidInput(f"column {column!r}: drift threshold must be a number, got {threshold!r}")


def _as_array(values: pd.Series | np.ndarray | Sequence[Any], column_type: str) -> np.ndarray:
    if isinstance(values, pd.Series | pd.Index):
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return np.asarray(values)
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):
            if column_type == "num" and pd.api.types.is_numeric_dtype(dtype) and dtype.kind in "iufb":
                return values.to_numpy(dtype=np.float64, na_value=np.nan)
            return values.to_numpy(dtype=object)
        return values.to_numpy()
    return np.asarray(values)


def _column_drift(
    column: str,
    reference: np.ndarray,
    current: np.ndarray,
    column_type: ColumnType,
    method: str | None,
    threshold: float | None,
) -> ColumnDrift:
    def failed(error: str, ref_n: int = 0, cur_n: int = 0, ref_missing: int = 0, cur_missing: int = 0) -> ColumnDrift:
        test = STAT_TESTS.get(method or "")
        limit = threshold if threshold is not None else (test.default_threshold if test else math.nan)
        return ColumnDrift(
            column,
            column_type,
            method or "",
            math.nan,
            float(limit),
            False,
            ref_n,
            cur_n,
            ref_missing,
            cur_missing,
            error,
        )

    if column_type == "num":
        for side, values in (("reference", reference), ("current", current)):
            if values.dtype.kind not in "iufb":
                return failed(f"values in {side} data are not numeric (dtype {values.dtype})")
        ref, ref_missing = numeric_values(reference)
        cur, cur_missing = numeric_values(current)
        counts = (ref.size, cur.size, ref_missing, cur_missing)
        if ref.size == 0:
            return failed("no non-missing values in reference data", *counts)
        if cur.size == 0:
            return failed("no non-missing values in current data", *counts)
        sample = NumericSample(ref, cur, np.sort(ref), np.sort(cur))
        name = method or default_method("num", ref.size, sample.n_unique(cap=5))
        score = numeric_score(name, sample)
    else:
        cat, ref_missing, cur_missing = categorical_sample(reference, current)
        n_ref, n_cur = int(cat.reference_counts.sum()), int(cat.current_counts.sum())
        counts = (n_ref, n_cur, ref_missing, cur_missing)
        if n_ref == 0:
            return failed("no non-missing values in reference data", *counts)
        if n_cur == 0:
            return failed("no non-missing values in current data", *counts)
        name = method or default_method("cat", n_ref, cat.keys.size)
        try:
            score = keyed_score(name, cat.keys, cat.reference_counts, cat.current_counts)
        except TypeError as exc:  # Evidently's Z-test sorts the values: mixed types cannot be ordered
            return failed(f"values cannot be ordered for the Z-test: {exc}", *counts)
    test = STAT_TESTS[name]
    limit = float(test.default_threshold if threshold is None else threshold)
    return ColumnDrift(column, column_type, name, score, limit, test.drifted(score, limit), *counts)


# ---------------------------------------------------------------------------------------------------------
# A dataset
# ---------------------------------------------------------------------------------------------------------


def dataset_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    column_types: Mapping[str, ColumnType] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_threshold: float = 0.1,
    max_workers: int | None = None,
) -> DatasetDrift:
    """Drift of every column and the dataset verdict (drifted share of the columns without error >= threshold).

    `columns` defaults to the numerical and categorical columns of `current` as Evidently infers them, then
    those only in `reference`. `column_types` overrides inferred types, `methods` and `thresholds` give
    per-column tests and thresholds (Evidently's `per_column_method` / `per_column_threshold`).
    `max_workers` threads compute columns in parallel (default: one per CPU for large frames, else 1).

    Raises `InvalidInput` for a listed column in neither frame, a listed column whose type cannot be inferred
    and is not given, options naming columns that are not analysed, unknown or inapplicable methods, a NaN
    column threshold, a drift threshold outside [0, 1] or `max_workers` < 1.
    """
    if not 0.0 <= drift_threshold <= 1.0:
        raise InvalidInput(f"drift_threshold must be within [0, 1], got {drift_threshold!r}")
    if max_workers is not None and max_workers < 1:
        raise InvalidInput(f"max_workers must be at least 1, got {max_workers!r}")
    column_types = dict(column_types or {})
    methods = dict(methods or {})
    thresholds = dict(thresholds or {})
    ref_labels = {str(label): label for label in reference.columns}
    cur_labels = {str(label): label for label in current.columns}

    names, types, skipped = _select_columns(reference, current, ref_labels, cur_labels, columns, column_types)
    for option, mapping in (("methods", methods), ("thresholds", thresholds), ("column_types", column_types)):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise InvalidInput(f"{option} names columns that are not analysed: {', '.join(map(repr, unknown))}")
    for name in names:
        _check_options(name, types[name], methods.get(name), thresholds.get(name))

    def one(name: str) -> ColumnDrift:
        in_ref, in_cur = name in ref_labels, name in cur_labels
        if not (in_ref and in_cur):
            side = "current" if in_ref else "reference"
            test = STAT_TESTS.get(methods.get(name, ""))
            limit = thresholds.get(name, test.default_threshold if test else math.nan)
            return ColumnDrift(
                name,
                types[name],
                methods.get(name, ""),
                math.nan,
                float(limit),
                False,
                0,
                0,
                0,
                0,
                f"column missing in {side} data",
            )
        return _column_drift(
            name,
            _as_array(reference[ref_labels[name]], types[name]),
            _as_array(current[cur_labels[name]], types[name]),
            types[name],
            methods.get(name),
            thresholds.get(name),
        )

    workers = max_workers
    if workers is None:
        values = (len(reference) + len(current)) * len(names)
        workers = min(os.cpu_count() or 1, len(names), MAX_AUTO_WORKERS) if values >= PARALLEL_MIN_VALUES else 1
    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
            results = tuple(pool.map(one, names))
    else:
        results = tuple(one(name) for name in names)
    return summarize(results, drift_threshold, skipped=skipped)


def summarize(
    columns: Sequence[ColumnDrift], drift_threshold: float, *, skipped: Sequence[tuple[str, str]] = ()
) -> DatasetDrift:
    """The dataset verdict over per-column results: share of drifted among columns without error."""
    ok = [c for c in columns if c.error is None]
    drifted = sum(1 for c in ok if c.drifted)
    share = drifted / len(ok) if ok else 0.0
    return DatasetDrift(
        columns=tuple(columns),
        drift_share=share,
        drift_threshold=float(drift_threshold),
        dataset_drift=bool(ok) and share >= drift_threshold,
        number_of_columns=len(columns),
        number_of_drifted_columns=drifted,
        skipped_columns=tuple(skipped),
    )


def _select_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    ref_labels: Mapping[str, Any],
    cur_labels: Mapping[str, Any],
    columns: Sequence[str] | None,
    column_types: Mapping[str, ColumnType],
) -> tuple[list[str], dict[str, ColumnType], list[tuple[str, str]]]:
    """Column names to analyse, the type of each (given, else inferred from current, else reference), and the
    columns left out for their inferred type (text, datetime, ...), when the columns are not listed."""

    cache: dict[str, str] = {}

    def inferred(name: str) -> str:
        if name not in cache:
            frame, labels = (current, cur_labels) if name in cur_labels else (reference, ref_labels)
            cache[name] = infer_column_type(frame[labels[name]])
        return cache[name]

    for name, kind in column_types.items():
        if kind not in COLUMN_TYPES:
            raise InvalidInput(f"column {name!r}: unknown column type {kind!r}; allowed: 'num', 'cat'")
    if columns is None:
        ordered = list(cur_labels) + [name for name in ref_labels if name not in cur_labels]
        names = [name for name in ordered if name in column_types or inferred(name) in COLUMN_TYPES]
        skipped = [(name, inferred(name)) for name in ordered if name not in names]
    else:
        skipped = []
        names = [str(name) for name in columns]
        if len(set(names)) != len(names):
            raise InvalidInput("columns lists a column more than once")
        absent = [name for name in names if name not in ref_labels and name not in cur_labels]
        if absent:
            raise InvalidInput(f"columns not found in either frame: {', '.join(map(repr, absent))}")
    types: dict[str, ColumnType] = {}
    for name in names:
        kind = column_types.get(name) or inferred(name)
        if kind not in COLUMN_TYPES:
            raise InvalidInput(
                f"column {name!r} is inferred as {kind}, which is not analysed; give its type in column_types"
            )
        types[name] = kind  # type: ignore[assignment]
    return names, types, skipped


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None
