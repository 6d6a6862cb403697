"""Drift detection rules (pure): the deployment's drift configuration, windows, alert severity, report keys,
and the plain data passed between the flow's tasks."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidInput
from core.numbers import require_finite
from core.vocabulary import Environment, one_of
from tasks.drift.arrays import COLUMN_TYPES, METHODS

DEFAULT_INTERVAL_MINUTES = 60
DEFAULT_DRIFT_THRESHOLD = 0.1  # the database default of data_drift_reports.drift_threshold
CONFIG_KEYS = frozenset(
    {
        "enabled",
        "reference_uri",
        "inputs_uri",
        "timestamp_column",
        "columns",
        "column_types",
        "per_column",
        "drift_threshold",
        "interval_minutes",
    }
)


@dataclass(frozen=True)
class DriftConfig:
    """`deployment_config["monitoring"]["drift"]`, checked."""

    reference_uri: str
    inputs_uri: str
    timestamp_column: str = "timestamp"
    columns: tuple[str, ...] | None = None
    column_types: Mapping[str, str] = field(default_factory=dict)
    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = list(self.columns) if self.columns else None
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def drift_config(deployment_config: Mapping[str, Any] | None) -> DriftConfig | None:
    """The deployment's drift configuration, None when drift monitoring is not configured or disabled.

    InvalidInput names the offending key of a malformed configuration.
    """
    raw = ((deployment_config or {}).get("monitoring") or {}).get("drift")
    if raw is None or (isinstance(raw, Mapping) and raw.get("enabled") is False):
        return None
    where = "monitoring.drift"
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where} must be an object")
    unknown = sorted(set(raw) - CONFIG_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("reference_uri", "inputs_uri"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise InvalidInput(f"{where}.{key} is required (an artifact-store URI)")
    column_types = dict(raw.get("column_types") or {})
    bad_types = sorted(c for c, t in column_types.items() if t not in COLUMN_TYPES)
    if bad_types:
        raise InvalidInput(f"{where}.column_types: {', '.join(bad_types)} must be 'num' or 'cat'")
    methods, thresholds = {}, {}
    for column, options in dict(raw.get("per_column") or {}).items():
        if not isinstance(options, Mapping) or not set(options) <= {"method", "threshold"}:
            raise InvalidInput(f"{where}.per_column.{column} must be {{'method': ..., 'threshold': ...}}")
        if "method" in options:
            if options["method"] not in METHODS:
                raise InvalidInput(f"{where}.per_column.{column}.method must be one of {', '.join(METHODS)}")
            methods[column] = options["method"]
        if "threshold" in options:
            thresholds[column] = require_finite(options["threshold"], f"{where}.per_column.{column}.threshold")
    threshold = require_finite(raw.get("drift_threshold", DEFAULT_DRIFT_THRESHOLD), f"{where}.drift_threshold")
    if not 0 <= threshold <= 1:
        raise InvalidInput(f"{where}.drift_threshold must be between 0 and 1")
    interval = raw.get("interval_minutes", DEFAULT_INTERVAL_MINUTES)
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 7 * 24 * 60:
        raise InvalidInput(f"{where}.interval_minutes must be a whole number of minutes (1 to 10080)")
    columns = raw.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise InvalidInput(f"{where}.columns must be a list of column names")
    return DriftConfig(
        reference_uri=raw["reference_uri"],
        inputs_uri=raw["inputs_uri"],
        timestamp_column=str(raw.get("timestamp_column") or "timestamp"),
        columns=tuple(columns) if columns else None,
        column_types=column_types,
        methods=methods,
        thresholds=thresholds,
        drift_threshold=threshold,
        interval_minutes=interval,
    )


def drift_window(at: datetime, interval_minutes: int) -> tuple[datetime, datetime]:
    """The interval ending at `at` floored to the interval grid: reruns for the same slot get the same window."""
    at = at.astimezone(UTC)
    step = interval_minutes * 60
    end = datetime.fromtimestamp(math.floor(at.timestamp() / step) * step, tz=UTC)
    return end - timedelta(minutes=interval_minutes), end


def explicit_window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime] | None:
    """A window given by the caller, checked; None when neither bound is given."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise InvalidInput("give both --start and --end, or neither")
    start, end = _aware(start), _aware(end)
    if start >= end:
        raise InvalidInput(f"the window is empty: start {start.isoformat()} is not before end {end.isoformat()}")
    return start, end


def report_change(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """How a run changed its window's report: `new`, `unchanged` (a rerun that found the same result, e.g. a
    second `make demo` in the same hour) or `updated` (late inputs or a new configuration changed it)."""
    if before is None:
        return "new"
    # both sides as JSON would store them: tuples become lists, keys lose their order
    same = json.dumps(dict(before), sort_keys=True, default=str) == json.dumps(dict(after), sort_keys=True, default=str)
    return "unchanged" if same else "updated"


def alert_severity(share: float, threshold: float) -> str:
    """Severity of a drift alert by the share of drifted columns: critical from half the columns."""
    if share >= 0.5:
        return "critical"
    if share >= max(0.3, 2 * threshold):
        return "high"
    if share >= max(0.2, 1.5 * threshold):
        return "medium"
    return "low"


def report_key(org: str, project: str, deployment: str, environment: str, start: datetime, end: datetime) -> str:
    """Deterministic object key of a window's HTML report: a rerun overwrites its own page."""
    stamp = f"{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    return f"drift-reports/{org}/{project}/{deployment}-{environment}/{stamp}.html"


@dataclass(frozen=True)
class DriftTarget:
    """One deployment to analyse, passed between tasks (so shown in the Prefect UI and stored in its database):
    ids, names and the `monitoring.drift` keys only, never the rest of `deployment_config` (it may hold
    anything the serving layer needs, secrets included)."""

    organization_id: uuid.UUID
    organization: str
    project_id: uuid.UUID
    project: str
    deployment_id: uuid.UUID
    deployment: str
    environment: str
    drift: Any  # deployment_config["monitoring"]["drift"], as configured (checked by `drift_config`)
    allowed_uris: tuple[str, ...] = ()  # organizations.settings["storage"]["allowed_uris"]

    @property
    def name(self) -> str:
        return f"{self.organization}/{self.project}/{self.deployment} ({self.environment})"


@dataclass(frozen=True)
class DriftOutcome:
    deployment: str
    status: str  # reported | incomplete (some columns errored) | skipped | failed
    message: str
    change: str | None = None  # new | updated | unchanged: the window's report against what a rerun found
    report_id: uuid.UUID | None = None
    drift_share: float | None = None
    drift_detected: bool | None = None
    report_uri: str | None = None
    alert_id: uuid.UUID | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    window: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def deployment_ref(deployment: str | None, environment: str | None) -> tuple[str, str, str, str] | None:
    """`ORG/PROJECT/DEPLOYMENT` and its environment, checked; None when no deployment is named."""
    if deployment is None:
        if environment is not None:
            raise InvalidInput("--env needs --deployment ORG/PROJECT/DEPLOYMENT")
        return None
    parts = deployment.split("/")
    if len(parts) != 3 or not all(parts):
        raise InvalidInput(f"'{deployment}' is not ORG/PROJECT/DEPLOYMENT")
    return parts[0], parts[1], parts[2], one_of(Environment, environment, "--env")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
