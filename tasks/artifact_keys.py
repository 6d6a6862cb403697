"""Where a model version's artifact lives in the store: content-addressed object keys."""

from __future__ import annotations

import re


def slugify(name: str) -> str:
    """`Credit Card Fraud Model` → `credit-card-fraud-model` (object keys)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def artifact_key(org: str, project: str, model_name: str, version: str, sha256: str, filename: str) -> str:
    """Content-addressed key of a version's artifact: concurrent registrations never overwrite each other."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename) or "artifact"
    return f"models/{org}/{project}/{slugify(model_name)}/{version}/{sha256[:16]}/{safe_name}"
