"""Drift statistics: `tasks.drift.verdicts.dataset_drift` against Evidently 0.7.23's `Report([DataDriftPreset()])`.

25 columns (20 numerical, 5 categorical, some shifted) at 500 and 200,000 reference and current rows: median
wall time of each side, the speed-up, the tracemalloc peak of one run of each (numpy and pandas buffers are
traced), and whether every column's test, verdict and score agree (asserted).
"""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently sends telemetry unless told not to; set before importing it

import gc
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import median_seconds, print_table, write_results
from tasks.drift.arrays import EVIDENTLY_DISPLAY_NAMES
from tasks.drift.verdicts import DatasetDrift, dataset_drift

SIZES = (500, 200_000)
OURS_REPEAT = 5
EVIDENTLY_REPEAT = {500: 5, 200_000: 3}


def make_frames(rows: int, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames: 20 numerical columns (every 4th shifted) and 5 categorical ones."""
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for i in range(20):
        shift = 0.25 if i % 4 == 0 else 0.0
        if i % 5 == 1:  # skewed
            reference[f"num_{i:02d}"] = rng.lognormal(0, 0.8, rows)
            current[f"num_{i:02d}"] = rng.lognormal(shift, 0.8, rows)
        elif i % 5 == 2:  # integer-valued with missing values
            ref = rng.poisson(20, rows).astype(float)
            cur = rng.poisson(20 + 10 * shift, rows).astype(float)
            ref[rng.random(rows) < 0.02] = np.nan
            cur[rng.random(rows) < 0.02] = np.nan
            reference[f"num_{i:02d}"], current[f"num_{i:02d}"] = ref, cur
        else:
            reference[f"num_{i:02d}"] = rng.normal(0, 1, rows)
            current[f"num_{i:02d}"] = rng.normal(shift, 1 + shift, rows)
    for i in range(5):
        levels = np.array([f"level_{k}" for k in range(5 + 5 * i)], dtype=object)
        weights = np.ones(levels.size) / levels.size
        shifted = weights.copy()
        if i % 2 == 0:
            shifted[0] *= 2
            shifted /= shifted.sum()
        reference[f"cat_{i}"] = levels[rng.choice(levels.size, rows, p=weights)]
        current[f"cat_{i}"] = levels[rng.choice(levels.size, rows, p=shifted)]
    return pd.DataFrame(reference), pd.DataFrame(current)


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[str, float, bool]]:
    """Evidently's per-column (method, score, drifted) from a default `DataDriftPreset` report."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
    result = snapshot.dict()
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in result["tests"] if t["id"] == "drift"}
    return {
        m["config"]["column"]: (
            EVIDENTLY_DISPLAY_NAMES.get(m["config"]["method"], m["config"]["method"]),
            float(m["value"]),
            failed[m["id"]],
        )
        for m in result["metrics"]
        if m["config"]["type"] == "evidently:metric_v2:ValueDrift"
    }


def agreement(ours: DatasetDrift, theirs: dict[str, tuple[str, float, bool]]) -> tuple[int, list[str]]:
    """Columns whose method, verdict and score (1e-9) agree, and a description of each that does not."""
    differences = []
    assert {c.column for c in ours.columns} == set(theirs), "different column sets"
    for column in ours.columns:
        method, score, drifted = theirs[column.column]
        close = abs(column.score - score) <= 1e-9 * max(1.0, abs(score))
        if (column.method, column.drifted) != (method, drifted) or not close:
            differences.append(
                f"{column.column}: ours {column.method} {column.score!r} {column.drifted}, "
                f"evidently {method} {score!r} {drifted}"
            )
    return len(ours.columns) - len(differences), differences


def peak_mib(fn: Callable[[], object]) -> float:
    """tracemalloc peak (MiB) of one call, above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def measure(rows: int) -> dict[str, Any]:
    """Agreement (asserted), median times and peak memory of both sides on one frame size."""
    reference, current = make_frames(rows)
    ours_result = dataset_drift(reference, current)
    theirs = run_evidently(reference, current)  # also warms Evidently up
    agree, differences = agreement(ours_result, theirs)
    print(f"{rows:,} rows: {agree}/{len(ours_result.columns)} column verdicts identical to Evidently")
    for line in differences:
        print("  differs:", line)
    assert not differences, differences

    def ours() -> DatasetDrift:
        return dataset_drift(reference, current)

    def ours_one_thread() -> DatasetDrift:
        return dataset_drift(reference, current, max_workers=1)

    def evidently() -> dict[str, tuple[str, float, bool]]:
        return run_evidently(reference, current)

    ours_s = median_seconds(ours, repeat=OURS_REPEAT)
    theirs_s = median_seconds(evidently, repeat=EVIDENTLY_REPEAT[rows], warmup=0)
    return {
        "rows_reference": rows,
        "rows_current": rows,
        "ours_seconds": ours_s,
        "ours_one_thread_seconds": median_seconds(ours_one_thread, repeat=OURS_REPEAT),
        "evidently_seconds": theirs_s,
        "speedup": theirs_s / ours_s,
        "ours_peak_mib": peak_mib(ours),
        "evidently_peak_mib": peak_mib(evidently),
        "columns": len(ours_result.columns),
        "columns_agreeing": agree,
        "drifted_columns": ours_result.number_of_drifted_columns,
    }


def main() -> dict[str, Any]:
    results: dict[str, Any] = {"columns": {"numerical": 20, "categorical": 5}, "sizes": {}}
    table = []
    for rows in SIZES:
        figures = measure(rows)
        results["sizes"][str(rows)] = figures
        table.append(
            [
                f"{rows:,}",
                figures["ours_seconds"],
                figures["ours_one_thread_seconds"],
                figures["evidently_seconds"],
                f"{figures['speedup']:.1f}x",
                figures["ours_peak_mib"],
                figures["evidently_peak_mib"],
                f"{figures['columns_agreeing']}/{figures['columns']}",
            ]
        )
    print_table(
        "Drift: tasks.drift.verdicts.dataset_drift vs Evidently 0.7.23 Report(DataDriftPreset()), 25 columns, "
        "rows per side",
        [
            "rows",
            "ours s",
            "ours 1 thread s",
            "evidently s",
            "speed-up",
            "ours peak MiB",
            "evidently peak MiB",
            "verdicts agree",
        ],
        table,
    )
    write_results("drift", results)
    return results


if __name__ == "__main__":
    main()
