"""The demo organization of the spec's sample: Acme Corp → Fraud Detection → Credit Card Fraud Model.

Idempotent: every row is keyed by its natural key (slug, e-mail, name, version) and inserted only when
absent, objects in the artifact store are content-addressed, so a second run changes nothing — including
stages the demo's promotions have moved since.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import (
    Alert,
    Deployment,
    Model,
    ModelMonitoring,
    ModelVersion,
    NotificationChannel,
    NotificationRule,
    Organization,
    OrganizationMembership,
    Project,
    ProjectMember,
    User,
)
from db.queries.registry import record_transition
from db.session import session_scope, system_session
from demo import sample_data
from services.secrets import ensure_key_file, secret_box
from services.storage import open_store
from tasks.notifications.channels import seal
from tasks.registry.rules import artifact_key

ORG = "acme"
PROJECT = "fraud-detection"
MODEL = "Credit Card Fraud Model"
ADMIN = "admin@acme.example"
DEVELOPER = "dev@acme.example"
VIEWER = "viewer@acme.example"
USERS = (
    (ADMIN, "Ada", "Admin", "admin"),
    (DEVELOPER, "Dev", "Eloper", "developer"),
    (VIEWER, "Vic", "Viewer", "viewer"),
)
PROJECT_ROLES = {DEVELOPER: "contributor", VIEWER: "viewer"}
SCHEMA = {
    "inputs": [
        {"name": name, "type": "string" if kind == "cat" else "number"}
        for name, kind in sample_data.FEATURE_TYPES.items()
    ],
    "outputs": [{"name": "fraud_probability", "type": "number"}],
}
# version -> (stage, metrics, days ago of each transition in order)
VERSIONS: dict[str, tuple[str, dict[str, float], list[tuple[str | None, str, int]]]] = {
    "1.0.0": (
        "production",
        {"accuracy": 0.951, "precision": 0.82, "recall": 0.74, "f1": 0.778, "auc": 0.962, "latency_p95_ms": 38.0},
        [(None, "development", 60), ("development", "staging", 45), ("staging", "production", 30)],
    ),
    "1.1.0": (
        "staging",
        {"accuracy": 0.958, "precision": 0.85, "recall": 0.79, "f1": 0.819, "auc": 0.971, "latency_p95_ms": 35.0},
        [(None, "development", 10), ("development", "staging", 3)],
    ),
    "1.2.0": (
        "development",
        {"accuracy": 0.949, "precision": 0.80, "recall": 0.81, "f1": 0.805, "auc": 0.958, "latency_p95_ms": 41.0},
        [(None, "development", 1)],
    ),
}
PROMOTION_POLICY = {
    "primary_metric": "auc",
    "min_absolute_change": 0.002,
    "required_metrics": ["auc", "precision", "recall"],
    "guard_metrics": {"recall": 0.02, "latency_p95_ms": 5.0},
    "min_hours_in_staging": 24,
}
REFERENCE_ROWS = 5000
DRIFT_INTERVAL_MINUTES = 60


@dataclass
class SeedSummary:
    created: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, count: int = 1) -> None:
        if count:
            self.created[what] = self.created.get(what, 0) + count

    def describe(self) -> str:
        if not self.created:
            return f"unchanged: organization '{ORG}' is seeded already"
        parts = ", ".join(f"{n} {what}" for what, n in self.created.items())
        return f"seeded organization '{ORG}': created {parts}"


def seed_demo() -> SeedSummary:
    """Load the demo organization; returns what was created (nothing on a second run)."""
    summary = SeedSummary()
    # the demo's channel has secrets: the demo is one of the two places allowed to create the key file
    if ensure_key_file() is not None:
        summary.add("secret key file")
    store = open_store()
    artifacts = {v: _put(store, sample_data.model_artifact(v), v) for v in VERSIONS}
    reference_uri = _put_reference(store)
    # the organization, its users and memberships are platform administration (the maintenance role); the
    # rest is ordinary tenant data, written as the application role scoped to the new organization
    with system_session() as session:
        org_id = _organization(session, summary)
        users = _users(session, summary, org_id)
    with session_scope(org_id) as session:
        project_id = _project(session, summary, org_id, users)
        model_id = _model(session, summary, org_id, project_id, users[ADMIN])
        versions = _versions(session, summary, org_id, model_id, users[ADMIN], artifacts)
        deployments = _deployments(session, summary, org_id, project_id, versions, users[ADMIN], store, reference_uri)
        _monitoring(session, summary, deployments["fraud-api-prod"])
        _alert(session, summary, org_id, deployments["fraud-api-prod"])
        _notifications(session, summary, org_id, project_id, users[ADMIN])
    return summary


def _put(store, data: bytes, version: str) -> tuple[str, int, str]:
    sha = hashlib.sha256(data).hexdigest()
    key = artifact_key(ORG, PROJECT, MODEL, version, sha, "model.bin")
    if not store.exists(key):
        store.put(key, data)
    return store.uri_for(key), len(data), sha


def _put_reference(store) -> str:
    key = f"datasets/{ORG}/{PROJECT}/fraud-api-prod/reference.parquet"
    if not store.exists(key):
        buffer = io.BytesIO()
        sample_data.transactions(REFERENCE_ROWS, seed=7).to_parquet(buffer, index=False)
        store.put(key, buffer.getvalue())
    return store.uri_for(key)


def _insert(session: Session, model: Any, conflict: list[str], **values: Any) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when a row was created."""
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict).returning(model.id)
    return session.execute(stmt).scalar_one_or_none() is not None


def _organization(session: Session, summary: SeedSummary) -> uuid.UUID:
    summary.add(
        "organization",
        _insert(
            session,
            Organization,
            ["slug"],
            name="Acme Corp",
            slug=ORG,
            billing_email="billing@acme.example",
            subscription_plan="professional",
            max_users=25,
            max_models=10,
        ),
    )
    return session.scalar(select(Organization.id).where(Organization.slug == ORG).with_for_update())


def _users(session: Session, summary: SeedSummary, org_id: uuid.UUID) -> dict[str, uuid.UUID]:
    ids = {}
    for email, first, last, role in USERS:
        summary.add(
            "users", _insert(session, User, ["email"], email=email, first_name=first, last_name=last, is_verified=True)
        )
        ids[email] = session.scalar(select(User.id).where(User.email == email))
        summary.add(
            "memberships",
            _insert(
                session,
                OrganizationMembership,
                ["organization_id", "user_id"],
                organization_id=org_id,
                user_id=ids[email],
                role=role,
            ),
        )
    return ids


def _project(session: Session, summary: SeedSummary, org_id: uuid.UUID, users: dict[str, uuid.UUID]) -> uuid.UUID:
    summary.add(
        "project",
        _insert(
            session,
            Project,
            ["organization_id", "slug"],
            organization_id=org_id,
            name="Fraud Detection",
            slug=PROJECT,
            description="Card-not-present fraud scoring for the payments API.",
            visibility="organization",
            settings={"promotion": {"allow_skip_staging": False}},
            created_by=users[ADMIN],
        ),
    )
    project_id = session.scalar(select(Project.id).where(Project.organization_id == org_id, Project.slug == PROJECT))
    for email, role in PROJECT_ROLES.items():
        summary.add(
            "project members",
            _insert(
                session,
                ProjectMember,
                ["project_id", "user_id"],
                project_id=project_id,
                user_id=users[email],
                role=role,
                added_by=users[ADMIN],
            ),
        )
    return project_id


def _model(
    session: Session, summary: SeedSummary, org_id: uuid.UUID, project_id: uuid.UUID, admin: uuid.UUID
) -> uuid.UUID:
    summary.add(
        "model",
        _insert(
            session,
            Model,
            ["organization_id", "project_id", "name"],
            organization_id=org_id,
            project_id=project_id,
            name=MODEL,
            description="Gradient-boosted trees over transaction features; scores card fraud in real time.",
            model_type="classification",
            framework="xgboost",
            task_type="binary_classification",
            tags=["fraud", "payments", "tabular"],
            metadata_={"owner_team": "risk-ml", "promotion": PROMOTION_POLICY},
            created_by=admin,
        ),
    )
    return session.scalar(select(Model.id).where(Model.project_id == project_id, Model.name == MODEL))


def _versions(
    session: Session,
    summary: SeedSummary,
    org_id: uuid.UUID,
    model_id: uuid.UUID,
    admin: uuid.UUID,
    artifacts: dict[str, tuple[str, int, str]],
) -> dict[str, uuid.UUID]:
    ids = {}
    now = session.scalar(select(func.now()))
    for version, (stage, metrics, transitions) in VERSIONS.items():
        uri, size, sha = artifacts[version]
        created = _insert(
            session,
            ModelVersion,
            ["model_id", "version"],
            model_id=model_id,
            version=version,
            stage=stage,
            model_file_path=uri,
            model_size_bytes=size,
            artifact_sha256=sha,
            requirements="xgboost==2.1.4\nscikit-learn==1.6.1\nnumpy==2.2.4\n",
            performance_metrics=metrics,
            training_metrics={"epochs": 300, "train_logloss": 0.081, "valid_logloss": 0.094},
            model_schema=SCHEMA,
            description=f"Release {version} of the fraud model.",
            created_by=admin,
            created_at=now - timedelta(days=transitions[0][2]),
        )
        row = session.scalar(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
        )
        ids[version] = row.id
        if created:
            summary.add("model versions")
            for from_stage, to_stage, days in transitions:
                record_transition(
                    session=session,
                    organization_id=org_id,
                    version=row,
                    from_stage=from_stage,
                    to_stage=to_stage,
                    actor_user_id=admin,
                    api_key_id=None,
                    reason="seeded history",
                    at=now - timedelta(days=days),
                )
                summary.add("stage transitions")
    return ids


def _deployments(
    session: Session,
    summary: SeedSummary,
    org_id: uuid.UUID,
    project_id: uuid.UUID,
    versions: dict[str, uuid.UUID],
    admin: uuid.UUID,
    store,
    reference_uri: str,
) -> dict[str, uuid.UUID]:
    drift = {
        "reference_uri": reference_uri,
        "inputs_uri": store.uri_for(f"inference-logs/{ORG}/{PROJECT}/fraud-api-prod"),
        "timestamp_column": "timestamp",
        "column_types": sample_data.FEATURE_TYPES,
        "drift_threshold": 0.1,
        "interval_minutes": DRIFT_INTERVAL_MINUTES,
    }
    specs = {
        "fraud-api-prod": (
            "production",
            "1.0.0",
            {"monitoring": {"drift": drift, "alerts": {"high_latency": {"max": 50.0, "buckets": 2}}}},
        ),
        # the staging deployment is monitored too: its drift report is the evidence the promotion gate needs
        "fraud-api-staging": (
            "staging",
            "1.1.0",
            {
                "monitoring": {
                    "drift": {**drift, "inputs_uri": store.uri_for(f"inference-logs/{ORG}/{PROJECT}/fraud-api-staging")}
                }
            },
        ),
    }
    ids = {}
    now = session.scalar(select(func.now()))
    for name, (environment, version, extra) in specs.items():
        summary.add(
            "deployments",
            _insert(
                session,
                Deployment,
                ["organization_id", "project_id", "name", "environment"],
                organization_id=org_id,
                project_id=project_id,
                model_version_id=versions[version],
                name=name,
                environment=environment,
                endpoint_url=f"http://127.0.0.1:8080/{name}/predict",
                status="active",
                instance_type="medium",
                min_instances=2 if environment == "production" else 1,
                max_instances=10 if environment == "production" else 2,
                deployment_config={
                    "env": {"LOG_LEVEL": "info"},
                    "resources": {"cpu": "1", "memory": "2Gi"},
                    **extra,
                },
                created_by=admin,
                deployed_at=now - timedelta(days=30 if environment == "production" else 3),
            ),
        )
        ids[name] = session.scalar(
            select(Deployment.id).where(
                Deployment.organization_id == org_id, Deployment.name == name, Deployment.environment == environment
            )
        )
    return ids


def _monitoring(session: Session, summary: SeedSummary, deployment_id: uuid.UUID) -> None:
    if session.scalar(select(func.count()).where(ModelMonitoring.deployment_id == deployment_id)):
        return
    now = session.scalar(select(func.now()))
    rows = []
    for i in range(48):  # the last 24 hours, every 30 minutes
        at = now - timedelta(minutes=30 * (48 - i))
        latency = 38.0 + 6.0 * ((i % 12) / 12) + (14.0 if i >= 44 else 0.0)
        rows += [
            dict(
                deployment_id=deployment_id,
                metric_name="latency_p95_ms",
                value=latency,
                threshold_max=50.0,
                is_anomaly=latency > 50.0,
                recorded_at=at,
            ),
            dict(
                deployment_id=deployment_id,
                metric_name="error_rate",
                value=0.002 + 0.0005 * (i % 4),
                threshold_max=0.01,
                recorded_at=at,
            ),
            dict(
                deployment_id=deployment_id,
                metric_name="throughput_rps",
                value=120.0 + 30.0 * ((i + 6) % 24 < 12),
                threshold_min=20.0,
                recorded_at=at,
            ),
        ]
    session.execute(insert(ModelMonitoring), rows)
    summary.add("monitoring points", len(rows))


def _alert(session: Session, summary: SeedSummary, org_id: uuid.UUID, deployment_id: uuid.UUID) -> None:
    exists = session.scalar(
        select(Alert.id).where(
            Alert.deployment_id == deployment_id, Alert.alert_type == "high_latency", Alert.status != "resolved"
        )
    )
    if exists:
        return
    session.add(
        Alert(
            organization_id=org_id,
            deployment_id=deployment_id,
            alert_type="high_latency",
            severity="medium",
            title="p95 latency above 50 ms on fraud-api-prod",
            message="p95 latency has been above its 50 ms threshold for the last 2 hours (peak 58 ms).",
        )
    )
    summary.add("alerts")


def _notifications(
    session: Session, summary: SeedSummary, org_id: uuid.UUID, project_id: uuid.UUID, admin: uuid.UUID
) -> None:
    channel_id = session.scalar(
        select(NotificationChannel.id).where(
            NotificationChannel.organization_id == org_id, NotificationChannel.name == "ops-webhook"
        )
    )
    if channel_id is None:
        channel = NotificationChannel(
            organization_id=org_id,
            name="ops-webhook",
            type="webhook",
            configuration=seal(
                "webhook",
                {
                    "url": "http://127.0.0.1:9/hooks/mlops?token=demo-token-not-a-secret",
                    "signing_secret": "demo-signing-secret",
                    "timeout_seconds": 5,
                },
                secret_box(),
            ),
            created_by=admin,
        )
        session.add(channel)
        session.flush()
        channel_id = channel.id
        summary.add("notification channels")
    for trigger in ("alert", "model_update"):
        exists = session.scalar(
            select(NotificationRule.id).where(
                NotificationRule.channel_id == channel_id, NotificationRule.trigger_type == trigger
            )
        )
        if exists is None:
            conditions = {"min_severity": "medium"} if trigger == "alert" else {}
            session.add(
                NotificationRule(
                    organization_id=org_id,
                    project_id=project_id,
                    channel_id=channel_id,
                    trigger_type=trigger,
                    conditions=conditions,
                    created_by=admin,
                )
            )
            summary.add("notification rules")
