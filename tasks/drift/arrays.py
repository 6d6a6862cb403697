"""Drift statistics on arrays: Evidently 0.7.23's tests, its default choice of test, and the prepared samples
they run on.

Pure numpy/scipy functions, no I/O; `tasks.drift.verdicts` turns frames and columns into these arrays and the scores
into verdicts. Each helper reproduces one piece of `evidently.legacy.calculations.stattests`:

* The default test depends on the column type, the number of reference values left (<= 1000 or more) and the
  number of distinct values of both sides together (`registry._get_default_stattest`): numerical, <= 1000 rows:
  chi-square if 3-5 distinct values, Z-test if <= 2, else Kolmogorov-Smirnov; numerical, > 1000 rows:
  Jensen-Shannon if <= 5 distinct values, else normed Wasserstein; categorical: chi-square (> 2 distinct) or
  Z-test (<= 1000 rows), Jensen-Shannon (> 1000 rows).
* Tests and default thresholds: `ks` p-value 0.05, drift if p <= threshold; `chisquare` (goodness of fit of the
  current counts against the reference counts scaled to the current size) and `z` (two-proportion Z-test of
  "not the smallest value") p-values 0.05, drift if p < threshold; `wasserstein` (divided by
  max(std of reference, 0.001)), `jensenshannon` and `psi` distances 0.1, drift if distance >= threshold.
  `jensenshannon` and `psi` bin numerical columns with more than 20 distinct reference values on Sturges bins
  over both sides, others by value; `psi` replaces empty bins by min(non-empty share) / 1e6 when that share is
  <= 1e-4, else by 1e-4, per side.
* Allowed overrides per type are Evidently's: numerical `ks`, `wasserstein`, `jensenshannon`, `psi`;
  categorical `chisquare`, `z`, `jensenshannon`, `psi` (`StatTest.column_types`).

Scores equal Evidently's to the last few bits: the same formulas run on the same numbers, except that sums over
categories may be taken in a different order (Evidently's own order depends on Python's string hashing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

ColumnType = Literal["num", "cat"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("num", "cat")

# Evidently's small-sample boundary: <= 1000 reference values use p-value tests.
SMALL_SAMPLE_ROWS = 1000
# Numerical columns with more distinct reference values than this are binned (Sturges) for PSI/Jensen-Shannon.
BINNING_MIN_UNIQUE = 20


@dataclass(frozen=True)
class StatTest:
    """One of Evidently's drift tests: its name, default threshold, verdict rule and allowed column types."""

    name: str
    default_threshold: float
    rule: Literal["p<=", "p<", ">="]
    column_types: tuple[ColumnType, ...]

    def drifted(self, score: float, threshold: float) -> bool:
        """Evidently's verdict for `score` against `threshold` (False for a NaN score)."""
        if self.rule == "p<=":
            return bool(score <= threshold)
        if self.rule == "p<":
            return bool(score < threshold)
        return bool(score >= threshold)


STAT_TESTS: dict[str, StatTest] = {
    "ks": StatTest("ks", 0.05, "p<=", ("num",)),
    "chisquare": StatTest("chisquare", 0.05, "p<", ("cat",)),
    "z": StatTest("z", 0.05, "p<", ("cat",)),
    "wasserstein": StatTest("wasserstein", 0.1, ">=", ("num",)),
    "jensenshannon": StatTest("jensenshannon", 0.1, ">=", ("num", "cat")),
    "psi": StatTest("psi", 0.1, ">=", ("num", "cat")),
}
METHODS: tuple[str, ...] = tuple(STAT_TESTS)
# Evidently's display names of the tests (what its ValueDrift metric reports as the method) -> the names above.
EVIDENTLY_DISPLAY_NAMES: dict[str, str] = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}


# ---------------------------------------------------------------------------------------------------------
# Pure statistics helpers (each reproduces one piece of evidently.legacy.calculations.stattests)
# ---------------------------------------------------------------------------------------------------------


def evidently_std(values: np.ndarray) -> float:
    """Population standard deviation exactly as Evidently gets it: `np.std` of a pandas Series (ddof=0).

    pandas' two-pass algorithm, including its rounding to float32 for float32 data, so the normed Wasserstein
    distance divides by the very same number.
    """
    return float(pd.Series(values, copy=False).std(ddof=0))


def normed_wasserstein(reference_sorted: np.ndarray, current_sorted: np.ndarray, reference_std: float) -> float:
    """First Wasserstein distance of two sorted samples divided by max(reference std, 0.001).

    Bit-identical to `scipy.stats.wasserstein_distance` on the same values (which Evidently calls): the CDFs
    are evaluated on the merged sorted values; where values tie the step width is 0, so counting by position
    gives the same integral. Buffers are reused, so the peak is about four arrays of both sides' size.
    """
    u = reference_sorted.astype(np.float64, copy=False)
    v = current_sorted.astype(np.float64, copy=False)
    merged = np.concatenate((u, v))
    order = np.argsort(merged, kind="stable")  # two sorted runs: a linear merge
    sorted_ = np.take(merged, order)
    deltas = np.subtract(sorted_[1:], sorted_[:-1], out=merged[:-1])
    from_u = order[:-1] < u.size
    counts = np.cumsum(from_u, dtype=np.int32 if merged.size < 2**31 else np.int64)
    u_cdf = np.divide(counts, u.size, out=sorted_[:-1])
    np.logical_not(from_u, out=from_u)
    np.cumsum(from_u, dtype=counts.dtype, out=counts)
    v_cdf = np.divide(counts, v.size, out=order.view(np.float64)[:-1])
    np.abs(np.subtract(u_cdf, v_cdf, out=u_cdf), out=u_cdf)
    return float(np.vecdot(u_cdf, deltas)) / max(reference_std, 0.001)


def sturges_bin_edges(minimum: Any, maximum: Any, size: int, dtype: np.dtype[Any]) -> np.ndarray:
    """`np.histogram_bin_edges(data, bins="sturges")` from the data's min, max, size and dtype alone."""
    dt = np.dtype(dtype)
    low, high = dt.type(minimum), dt.type(maximum)
    first, last = low, high
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = _unsigned_subtract(high, low) / (np.log2(size) + 1.0)
    if width:
        if np.issubdtype(dt, np.integer) and width < 1:
            width = 1
        n_bins = int(np.ceil(_unsigned_subtract(last, first) / width))
    else:
        n_bins = 1
    bin_type = np.result_type(first, last, np.empty(0, dt))
    if np.issubdtype(bin_type, np.integer):
        bin_type = np.result_type(bin_type, float)
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=bin_type)


def histogram_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`np.histogram(values, edges)[0]` for already sorted values (last bin closed on the right)."""
    cumulative = np.concatenate(
        (sorted_values.searchsorted(edges[:-1], "left"), sorted_values.searchsorted(edges[-1:], "right"))
    )
    return np.diff(cumulative)


def fill_empty_bins(percents: np.ndarray) -> np.ndarray:
    """Evidently's PSI epsilon: empty bins get min(non-empty share) / 1e6 if that is <= 1e-4, else 1e-4."""
    smallest = percents[percents != 0].min()
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(percents == 0, fill, percents)


def psi_value(reference_percents: np.ndarray, current_percents: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins, empty bins filled first."""
    ref = fill_empty_bins(reference_percents)
    cur = fill_empty_bins(current_percents)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def jensenshannon_value(reference_percents: np.ndarray, current_percents: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) of two share vectors over the same bins."""
    return float(distance.jensenshannon(reference_percents, current_percents))


def chisquare_p_value(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Goodness of fit of the current counts against the reference counts scaled to the current total."""
    k_norm = int(current_counts.sum()) / int(reference_counts.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(current_counts, reference_counts * k_norm)[1])


def z_test_p_value(reference_others: int, reference_count: int, current_others: int, current_count: int) -> float:
    """Two-sided two-proportion Z-test p-value of the share of values that are not the smallest value."""
    n1, n2 = reference_count, current_count
    p1 = float(reference_others) / n1
    p2 = float(current_others) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def default_method(column_type: ColumnType, reference_count: int, n_unique: int) -> str:
    """Evidently's default test from the column type, reference values and distinct values of both sides."""
    if reference_count <= SMALL_SAMPLE_ROWS:
        if column_type == "num" and n_unique > 5:
            return "ks"
        return "chisquare" if n_unique > 2 else "z"
    if column_type == "num" and n_unique > 5:
        return "wasserstein"
    return "jensenshannon"


# ---------------------------------------------------------------------------------------------------------
# Prepared samples
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericSample:
    """Finite values of both sides of a numerical column, in original and sorted order."""

    reference: np.ndarray
    current: np.ndarray
    reference_sorted: np.ndarray
    current_sorted: np.ndarray

    def n_unique(self, cap: int) -> int:
        """Distinct values of both sides together, exact up to `cap`, else `cap + 1`."""
        ref_n = _sorted_nunique(self.reference_sorted)
        cur_n = _sorted_nunique(self.current_sorted)
        if ref_n > cap or cur_n > cap:
            return cap + 1
        return int(np.union1d(_sorted_unique(self.reference_sorted), _sorted_unique(self.current_sorted)).size)

    def value_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct values of both sides (sorted) and each side's count of each."""
        keys = np.union1d(_sorted_unique(self.reference_sorted), _sorted_unique(self.current_sorted))
        return keys, _counts_of(self.reference_sorted, keys), _counts_of(self.current_sorted, keys)


@dataclass(frozen=True)
class CategoricalSample:
    """Distinct non-missing values of both sides and each side's count of each."""

    keys: np.ndarray
    reference_counts: np.ndarray
    current_counts: np.ndarray


def numeric_values(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Finite values (original order) and the number dropped."""
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind != "f":
        return values, 0
    finite = np.isfinite(values)
    kept = int(np.count_nonzero(finite))
    if kept == values.size:
        return values, 0
    return values[finite], values.size - kept


def categorical_sample(reference: np.ndarray, current: np.ndarray) -> tuple[CategoricalSample, int, int]:
    """Counts per distinct value over both sides (NaN/None/NA and ±inf dropped) and the missing counts."""
    combined = _concat_for_factorize(reference, current)
    codes, uniques = pd.factorize(combined, use_na_sentinel=True)
    uniques = np.asarray(uniques)
    infinite = _infinite_mask(uniques)
    n_keys = uniques.size
    if infinite.any():
        keep = ~infinite
        remap = np.full(n_keys + 1, -1, dtype=np.int64)
        remap[:n_keys][keep] = np.arange(int(keep.sum()))
        codes = remap[codes]  # code -1 (missing) reads the trailing -1
        uniques = uniques[keep]
        n_keys = uniques.size
    ref_codes, cur_codes = codes[: reference.size], codes[reference.size :]
    ref_valid, cur_valid = ref_codes[ref_codes >= 0], cur_codes[cur_codes >= 0]
    sample = CategoricalSample(
        keys=uniques,
        reference_counts=np.bincount(ref_valid, minlength=n_keys),
        current_counts=np.bincount(cur_valid, minlength=n_keys),
    )
    return sample, reference.size - ref_valid.size, current.size - cur_valid.size


def _concat_for_factorize(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Both sides in one array, so one factorization gives shared codes (numbers stay numbers)."""
    both_numeric = reference.dtype.kind in "iufb" and current.dtype.kind in "iufb"
    if both_numeric or (reference.dtype == current.dtype and reference.dtype.kind != "O"):
        return np.concatenate((reference, current))
    return np.concatenate((reference.astype(object, copy=False), current.astype(object, copy=False)))


def _infinite_mask(uniques: np.ndarray) -> np.ndarray:
    if uniques.dtype.kind == "f":
        return np.isinf(uniques)
    if uniques.dtype.kind == "O":
        return pd.Series(uniques, dtype=object).isin([np.inf, -np.inf]).to_numpy()
    return np.zeros(uniques.size, dtype=bool)


def _sorted_nunique(sorted_values: np.ndarray) -> int:
    if sorted_values.size == 0:
        return 0
    return 1 + int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1]))


def _sorted_unique(sorted_values: np.ndarray) -> np.ndarray:
    if sorted_values.size == 0:
        return sorted_values
    first = np.empty(sorted_values.size, dtype=bool)
    first[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=first[1:])
    return sorted_values[first]


def _counts_of(sorted_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return sorted_values.searchsorted(keys, "right") - sorted_values.searchsorted(keys, "left")


def _unsigned_subtract(a: Any, b: Any) -> Any:
    """numpy's `_unsigned_subtract`: a - b without signed-integer overflow."""
    dt = np.result_type(a, b)
    if np.issubdtype(dt, np.signedinteger):
        unsigned = np.dtype(f"u{dt.itemsize}")
        return np.subtract(np.asarray(a, dtype=dt), np.asarray(b, dtype=dt), casting="unsafe", dtype=unsigned)
    return np.subtract(a, b, dtype=dt)


# ---------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------


def numeric_score(name: str, sample: NumericSample) -> float:
    """The score of test `name` on a numerical column (binned for PSI/Jensen-Shannon above 20 distinct values)."""
    if name == "ks":
        return float(stats.ks_2samp(sample.reference_sorted, sample.current_sorted)[1])
    if name == "wasserstein":
        return normed_wasserstein(sample.reference_sorted, sample.current_sorted, evidently_std(sample.reference))
    if name in ("psi", "jensenshannon") and _sorted_nunique(sample.reference_sorted) > BINNING_MIN_UNIQUE:
        ref, cur = sample.reference_sorted, sample.current_sorted
        dtype = np.result_type(ref.dtype, cur.dtype)
        edges = sturges_bin_edges(min(ref[0], cur[0]), max(ref[-1], cur[-1]), ref.size + cur.size, dtype)
        ref_percents = histogram_counts(ref, edges) / ref.size
        cur_percents = histogram_counts(cur, edges) / cur.size
        return _percent_score(name, ref_percents, cur_percents)
    keys, ref_counts, cur_counts = sample.value_counts()
    return keyed_score(name, keys, ref_counts, cur_counts)


def keyed_score(name: str, keys: np.ndarray, ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """The score of test `name` on each side's count of each distinct value (`keys`)."""
    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    if name == "chisquare":
        return chisquare_p_value(ref_counts, cur_counts)
    if name == "z":
        if keys.size == 1:  # both sides hold the same single value
            return 1.0
        smallest = _smallest_key_index(keys)
        return z_test_p_value(n_ref - int(ref_counts[smallest]), n_ref, n_cur - int(cur_counts[smallest]), n_cur)
    return _percent_score(name, ref_counts / n_ref, cur_counts / n_cur)


def _smallest_key_index(keys: np.ndarray) -> int:
    if keys.dtype.kind in "iufb":
        return int(np.argmin(keys))
    values = keys.tolist()
    return values.index(min(values))


def _percent_score(name: str, ref_percents: np.ndarray, cur_percents: np.ndarray) -> float:
    if name == "psi":
        return psi_value(ref_percents, cur_percents)
    return jensenshannon_value(ref_percents, cur_percents)
