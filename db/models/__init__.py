"""Every table of the shared schema, one module per area of the spec; importing this registers them all."""

from db.models.experiments import Experiment, ExperimentRun, RunMetric
from db.models.monitoring import (
    Alert,
    DataDriftReport,
    ModelMonitoring,
    ModelMonitoringInvalidation,
    ModelMonitoringRollup,
    MonitoringAggregationState,
)
from db.models.notifications import (
    NotificationAlertState,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
    NotificationRule,
)
from db.models.projects import Project, ProjectMember
from db.models.registry import Model, ModelStageTransition, ModelVersion
from db.models.retention import RetentionArchive
from db.models.security import ApiKey, AuditLog
from db.models.serving import Deployment, DeploymentHistory
from db.models.tenancy import Organization, OrganizationMembership, User

__all__ = [
    "Alert",
    "ApiKey",
    "AuditLog",
    "DataDriftReport",
    "Deployment",
    "DeploymentHistory",
    "Experiment",
    "ExperimentRun",
    "Model",
    "ModelMonitoring",
    "ModelMonitoringInvalidation",
    "ModelMonitoringRollup",
    "ModelStageTransition",
    "ModelVersion",
    "MonitoringAggregationState",
    "NotificationAlertState",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationEvent",
    "NotificationRule",
    "Organization",
    "OrganizationMembership",
    "Project",
    "ProjectMember",
    "RetentionArchive",
    "RunMetric",
    "User",
]
