"""The control plane's vocabulary, defined once: environments, stages, trigger types, severities, statuses.

Each is a `StrEnum` whose values are the strings the schema's CHECK constraints list (in the spec's order, which
`db.models` builds the constraints from), so a member compares equal to the text a row holds and can be
written wherever a string is expected. `one_of` checks untrusted text against one of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from core.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)


class Environment(StrEnum):
    """Where a deployment serves (`deployments.environment`)."""

    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class Stage(StrEnum):
    """A model version's stage in the registry (`model_versions.stage`)."""

    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class TriggerType(StrEnum):
    """What a notification event is about (`notification_events.trigger_type`, `notification_rules`)."""

    ALERT = "alert"
    DEPLOYMENT = "deployment"
    MODEL_UPDATE = "model_update"
    EXPERIMENT_COMPLETE = "experiment_complete"


class Severity(StrEnum):
    """How serious an event is, least first (`notification_events.severity`); alerts never use `info`."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical: severities compare by rank, not alphabetically."""
        return list(Severity).index(self)


ALERT_SEVERITIES: tuple[Severity, ...] = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


class AlertType(StrEnum):
    """`alerts.alert_type`."""

    PERFORMANCE_DEGRADATION = "performance_degradation"
    DATA_DRIFT = "data_drift"
    HIGH_LATENCY = "high_latency"
    ERROR_RATE = "error_rate"
    CUSTOM = "custom"


class AlertStatus(StrEnum):
    """`alerts.status`: people acknowledge and resolve; the flows open and resolve."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ChannelType(StrEnum):
    """`notification_channels.type`."""

    EMAIL = "email"
    SLACK = "slack"
    TEAMS = "teams"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    """`notification_deliveries.status`."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"


class DeploymentStatus(StrEnum):
    """`deployments.status`."""

    PENDING = "pending"
    DEPLOYING = "deploying"
    ACTIVE = "active"
    INACTIVE = "inactive"
    FAILED = "failed"
    TERMINATING = "terminating"


class HistoryAction(StrEnum):
    """`deployment_history.action`."""

    DEPLOY = "deploy"
    UPDATE = "update"
    ROLLBACK = "rollback"
    TERMINATE = "terminate"


class HistoryStatus(StrEnum):
    """`deployment_history.status`."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class RunStatus(StrEnum):
    """`experiment_runs.status` and `experiments.status`."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def values(vocabulary: type[StrEnum]) -> tuple[str, ...]:
    """The plain strings of a vocabulary, in order (CHECK constraints, help texts)."""
    return tuple(member.value for member in vocabulary)


def one_of(vocabulary: type[E], value: object, what: str) -> E:
    """`value` as a member of `vocabulary`; InvalidInput `<what> must be one of a, b, c, got '<value>'` (at most
    40 characters of it) otherwise."""
    try:
        return vocabulary(value)
    except ValueError:
        shown = str(value)[:40]
        raise InvalidInput(f"{what} must be one of {', '.join(values(vocabulary))}, got '{shown}'") from None
