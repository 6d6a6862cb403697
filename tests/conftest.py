"""Test session set-up: private MLOPS_HOME and PREFECT_HOME, no telemetry, and the fixture plugins."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports Prefect or the project: nothing leaks between sessions or reaches the internet.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
os.environ["MLOPS_HOME"] = str(_SESSION_DIR / "home")
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(_SESSION_DIR / "prefect" / "storage")
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ.setdefault("MLOPS_SECRET_KEY", "")  # filled per test where secrets are exercised
os.environ.pop("MLOPS_API_KEY", None)
# the tests' HTTP and SMTP peers listen on 127.0.0.1, which channels may not reach by default (services.netguard)
os.environ["MLOPS_ALLOWED_NOTIFY_HOSTS"] = "127.0.0.1"
os.environ.pop("MLOPS_ARTIFACT_URI", None)

# The session's own key file, made on purpose as `mlops db upgrade` would: nothing creates one implicitly.
from services.secrets import ensure_key_file  # noqa: E402

ensure_key_file()

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.s3",
    "tests.fixtures.prefect",
    "tests.fixtures.orchestration",
    "tests.fixtures.peers",
    "tests.fixtures.hostile",
    "tests.fixtures.cli",
]
