"""Sample data of the demo organization: transaction features for the fraud model, reference and live."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

CATEGORIES = np.array(["grocery", "restaurants", "fuel", "travel", "electronics", "online"])
CATEGORY_P = np.array([0.30, 0.22, 0.16, 0.08, 0.09, 0.15])
DRIFTED_CATEGORY_P = np.array([0.18, 0.15, 0.10, 0.07, 0.22, 0.28])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "CA"])
COUNTRY_P = np.array([0.55, 0.15, 0.12, 0.10, 0.08])

FEATURE_TYPES = {
    "amount": "num",
    "hour_of_day": "num",
    "distance_from_home_km": "num",
    "transactions_24h": "num",
    "customer_age": "num",
    "merchant_category": "cat",
    "country": "cat",
    "card_present": "cat",
}


def transactions(n: int, *, seed: int, drifted: bool = False) -> pd.DataFrame:
    """`n` transactions; `drifted` shifts spending amounts up and the merchant mix towards online/electronics."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(4.1 if drifted else 3.5, 1.0, n), 2),
            "hour_of_day": rng.integers(0, 24, n),
            "distance_from_home_km": np.round(rng.exponential(15.0, n), 1),
            "transactions_24h": rng.poisson(3.0, n),
            "customer_age": np.clip(np.round(rng.normal(42, 12, n)), 18, 90).astype(int),
            "merchant_category": rng.choice(CATEGORIES, n, p=DRIFTED_CATEGORY_P if drifted else CATEGORY_P),
            "country": rng.choice(COUNTRIES, n, p=COUNTRY_P),
            "card_present": rng.integers(0, 2, n),
        }
    )


def logged_inputs(start: datetime, end: datetime, *, per_hour: int, seed: int, drifted: bool) -> pd.DataFrame:
    """What the serving layer logs between `start` and `end`: features plus a `timestamp` column."""
    hours = max((end - start) / timedelta(hours=1), 1 / 60)
    n = max(int(per_hour * hours), 50)
    frame = transactions(n, seed=seed, drifted=drifted)
    rng = np.random.default_rng(seed + 1)
    offsets = np.sort(rng.uniform(0, (end - start).total_seconds(), n))
    frame.insert(0, "timestamp", pd.to_datetime(start) + pd.to_timedelta(offsets, unit="s"))
    return frame


def model_artifact(version: str) -> bytes:
    """A stand-in for a trained model file: deterministic bytes per version."""
    rng = np.random.default_rng(sum(map(ord, version)))
    header = f"mlops-demo-model {version}\n".encode()
    return header + rng.bytes(64 * 1024)
