"""`drift compare`'s one-line summary: analysed columns are the denominator; missing, failed and skipped
columns are counted apart and named."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.drift.verdicts import dataset_drift


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 500
    words = [f"free text number {i} with many distinct words" for i in range(n)]
    reference = pd.DataFrame(
        {"amount": rng.normal(50, 5, n), "only_in_reference": rng.normal(0, 1, n), "comment": words}
    )
    current = pd.DataFrame({"amount": rng.normal(80, 5, n), "comment": words[::-1]})
    return reference, current


def test_summary_counts_missing_and_names_skipped_text_columns():
    reference, current = frames()
    result = dataset_drift(reference, current)
    assert result.number_of_analysed_columns == 1 and result.number_of_failed_columns == 1
    assert result.skipped_columns == (("comment", "text"),)
    assert result.summary() == (
        "1 of 1 analysed columns drifted (100%); 1 missing; skipped comment (text); dataset drift: yes (threshold 10%)"
    )
    assert result.to_json()["skipped_columns"] == [{"column": "comment", "inferred_type": "text"}]


def test_listed_columns_skip_nothing():
    reference, current = frames()
    result = dataset_drift(reference, current, columns=["amount"])
    assert result.skipped_columns == () and result.summary().startswith("1 of 1 analysed columns drifted (100%);")
