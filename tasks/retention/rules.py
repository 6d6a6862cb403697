"""Retention rules (pure): the policy (spec defaults, per-organization overrides), cutoffs, archive keys and
reports.

`parse_policy` validates `organizations.settings["retention"]`, `cutoffs` turns a policy and a time into the
instants before which each category expires. The run itself is `tasks.retention.service` (one organization at
a time), through `tasks.retention.archives` (archive, verify, delete audit logs) and `tasks.retention.data`
(monitoring, rollups, soft-deleted rows, artifacts, notifications).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidInput

# --- policy --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days each category is kept (spec, "Data Retention Policies")."""

    audit_logs_days: int = 730  # then archived to the artifact store and deleted
    monitoring_raw_days: int = 90  # raw points, deleted only where their rollups are complete
    monitoring_rollups_days: int = 365
    deleted_grace_days: int = 30  # soft-deleted experiments, models, projects, deployments
    model_artifacts_days: int = 365  # after the version retired
    notifications_days: int = 90  # after the event was delivered or dead


# Bounds of an override: short enough to catch a typo of units, long enough never to lose data by accident.
POLICY_BOUNDS: dict[str, tuple[int, int]] = {
    "audit_logs_days": (90, 36_500),
    "monitoring_raw_days": (7, 36_500),
    "monitoring_rollups_days": (30, 36_500),
    "deleted_grace_days": (1, 36_500),
    "model_artifacts_days": (30, 36_500),
    "notifications_days": (7, 36_500),
}
DEFAULT_POLICY = RetentionPolicy()


def parse_policy(settings: dict[str, Any] | None) -> RetentionPolicy:
    """The organization's policy: spec defaults overridden by `settings["retention"]`.

    Raises InvalidInput naming the first bad value: not an object, an unknown key, a value that is not a
    whole number of days within `POLICY_BOUNDS`, or raw monitoring kept longer than its rollups.
    """
    overrides = (settings or {}).get("retention")
    if overrides is None:
        return DEFAULT_POLICY
    if not isinstance(overrides, dict):
        raise InvalidInput(f"settings.retention must be an object, got {type(overrides).__name__}")
    known = {f.name for f in fields(RetentionPolicy)}
    values: dict[str, int] = {}
    for key, value in overrides.items():
        if key not in known:
            raise InvalidInput(
                f"settings.retention.{key} is not a retention setting (known: {', '.join(sorted(known))})"
            )
        low, high = POLICY_BOUNDS[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"settings.retention.{key} must be a whole number of days, got {value!r}")
        if not low <= value <= high:
            raise InvalidInput(f"settings.retention.{key} must be between {low} and {high} days, got {value}")
        values[key] = value
    policy = RetentionPolicy(**values)
    if policy.monitoring_raw_days > policy.monitoring_rollups_days:
        raise InvalidInput(
            f"settings.retention: raw monitoring ({policy.monitoring_raw_days} days) cannot outlive its rollups "
            f"({policy.monitoring_rollups_days} days)"
        )
    return policy


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these instants have expired."""

    audit_logs: datetime
    monitoring_raw: datetime  # a whole UTC hour: hour buckets are never split
    monitoring_rollups: datetime
    deleted: datetime
    model_artifacts: datetime
    notifications: datetime


def cutoffs(policy: RetentionPolicy, now: datetime) -> Cutoffs:
    """The cutoff of each category at `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise InvalidInput("retention needs a timezone-aware time")
    now = now.astimezone(UTC)
    raw = (now - timedelta(days=policy.monitoring_raw_days)).replace(minute=0, second=0, microsecond=0)
    return Cutoffs(
        audit_logs=now - timedelta(days=policy.audit_logs_days),
        monitoring_raw=raw,
        monitoring_rollups=now - timedelta(days=policy.monitoring_rollups_days),
        deleted=now - timedelta(days=policy.deleted_grace_days),
        model_artifacts=now - timedelta(days=policy.model_artifacts_days),
        notifications=now - timedelta(days=policy.notifications_days),
    )


# --- months and keys -----------------------------------------------------------------------------------------


def parse_month(text: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a `YYYY-MM` month; InvalidInput otherwise."""
    try:
        start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise InvalidInput(f"month must be YYYY-MM, got {text!r}") from None
    if len(text) != 7:
        raise InvalidInput(f"month must be YYYY-MM, got {text!r}")
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def archive_key(category: str, organization_slug: str, period: str) -> str:
    """The deterministic object key of one archived month: a rerun replaces the same object."""
    return f"retention/{category}/{organization_slug}/{period}.parquet"


def manifest_key(object_key: str) -> str:
    return object_key.removesuffix(".parquet") + ".manifest.json"


# --- reports -------------------------------------------------------------------------------------------------

CATEGORIES = (
    "audit_logs",
    "monitoring_raw",
    "monitoring_rollups",
    "deleted_deployments",
    "deleted_experiments",
    "deleted_models",
    "deleted_projects",
    "model_artifacts",
    "notification_events",
    "notification_deliveries",
)


@dataclass
class CategoryReport:
    """What happened (or, in a dry run, would happen) to one category of one organization."""

    category: str
    count: int = 0  # rows (or objects) removed, or that would be
    held: int = 0  # expired but kept: rollups incomplete, references, restore hold
    archive_keys: list[str] = field(default_factory=list)
    note: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass
class OrgReport:
    organization: str
    organization_id: str
    dry_run: bool
    status: str = "ok"  # ok | failed | skipped (bad policy)
    policy: dict[str, int] = field(default_factory=dict)
    categories: list[CategoryReport] = field(default_factory=list)
    error: str = ""
    audit_id: str | None = None
    alert_id: str | None = None

    def category(self, name: str) -> CategoryReport:
        for report in self.categories:
            if report.category == name:
                return report
        report = CategoryReport(name)
        self.categories.append(report)
        return report

    @property
    def failures(self) -> list[str]:
        return [f"{c.category}: {c.error}" for c in self.categories if c.error] + ([self.error] if self.error else [])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "failures": self.failures}


def table_rows(reports: list[OrgReport]) -> list[dict[str, Any]]:
    """One row per organization and category, for the Prefect table artifact and the CLI."""
    rows = []
    for report in reports:
        if report.status == "skipped":
            rows.append(
                {
                    "organization": report.organization,
                    "category": "-",
                    "count": 0,
                    "held": 0,
                    "status": "skipped",
                    "detail": report.error,
                }
            )
            continue
        for c in report.categories:
            detail = c.error or c.note or ", ".join(c.archive_keys)
            rows.append(
                {
                    "organization": report.organization,
                    "category": c.category,
                    "count": c.count,
                    "held": c.held,
                    "status": "failed" if c.error else ("dry-run" if report.dry_run else "ok"),
                    "detail": detail,
                }
            )
    return rows


@dataclass(frozen=True)
class OrgPlan:
    """One organization to enforce: its validated policy, or (policy None) why it is skipped."""

    organization_id: uuid.UUID
    slug: str
    policy: RetentionPolicy | None
    error: str = ""
