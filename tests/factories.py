"""Build whole tenants (one row in every organization-scoped table) with raw SQL, for tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

# Every table that holds tenant data, with the SQL that names each row's organization.
TENANT_TABLES: dict[str, str] = {
    "organizations": "SELECT id, id AS org FROM organizations",
    "users": "SELECT u.id, m.organization_id AS org FROM users u JOIN organization_memberships m ON m.user_id = u.id",
    "organization_memberships": "SELECT id, organization_id AS org FROM organization_memberships",
    "projects": "SELECT id, organization_id AS org FROM projects",
    "project_members": (
        "SELECT pm.id, p.organization_id AS org FROM project_members pm JOIN projects p ON p.id = pm.project_id"
    ),
    "models": "SELECT id, organization_id AS org FROM models",
    "model_versions": "SELECT v.id, m.organization_id AS org FROM model_versions v JOIN models m ON m.id = v.model_id",
    "experiments": "SELECT id, organization_id AS org FROM experiments",
    "experiment_runs": (
        "SELECT r.id, e.organization_id AS org FROM experiment_runs r JOIN experiments e ON e.id = r.experiment_id"
    ),
    "run_metrics": (
        "SELECT rm.id, e.organization_id AS org FROM run_metrics rm "
        "JOIN experiment_runs r ON r.id = rm.run_id JOIN experiments e ON e.id = r.experiment_id"
    ),
    "deployments": "SELECT id, organization_id AS org FROM deployments",
    "deployment_history": (
        "SELECT h.id, d.organization_id AS org FROM deployment_history h JOIN deployments d ON d.id = h.deployment_id"
    ),
    "model_monitoring": (
        "SELECT mm.id, d.organization_id AS org FROM model_monitoring mm JOIN deployments d ON d.id = mm.deployment_id"
    ),
    "model_monitoring_rollups": "SELECT id, organization_id AS org FROM model_monitoring_rollups",
    "data_drift_reports": (
        "SELECT r.id, d.organization_id AS org FROM data_drift_reports r JOIN deployments d ON d.id = r.deployment_id"
    ),
    "alerts": "SELECT id, organization_id AS org FROM alerts",
    "api_keys": "SELECT id, organization_id AS org FROM api_keys",
    "audit_logs": "SELECT id, organization_id AS org FROM audit_logs",
    "notification_channels": "SELECT id, organization_id AS org FROM notification_channels",
    "notification_rules": "SELECT id, organization_id AS org FROM notification_rules",
    "notification_events": "SELECT id, organization_id AS org FROM notification_events",
    "model_stage_transitions": "SELECT id, organization_id AS org FROM model_stage_transitions",
    "retention_archives": "SELECT id, organization_id AS org FROM retention_archives",
    "model_monitoring_invalidations": "SELECT id, organization_id AS org FROM model_monitoring_invalidations",
    "model_monitoring_aggregation_state": ("SELECT id, organization_id AS org FROM model_monitoring_aggregation_state"),
    "notification_deliveries": "SELECT id, organization_id AS org FROM notification_deliveries",
    "notification_alert_state": "SELECT id, organization_id AS org FROM notification_alert_state",
}


@dataclass
class Tenant:
    slug: str
    ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def __getitem__(self, key: str) -> uuid.UUID:
        return self.ids[key]


def _insert(conn: Connection, sql: str, **params) -> uuid.UUID:
    return conn.execute(text(sql + " RETURNING id"), params).scalar_one()


def _exists(conn: Connection, table: str) -> bool:
    return conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar_one()


def make_tenant(conn: Connection, slug: str, *, max_models: int = 10, max_users: int = 10) -> Tenant:
    """An organization with users of every role, a project, a model with three versions, deployments,
    monitoring, a drift report, an alert, an API key, audit rows, channels, rules, events and transitions."""
    t = Tenant(slug)
    ins = lambda sql, **p: _insert(conn, sql, **p)  # noqa: E731
    t.ids["org"] = ins(
        "INSERT INTO organizations (name, slug, billing_email, max_models, max_users) VALUES (:n, :s, :e, :mm, :mu)",
        n=f"{slug} Inc",
        s=slug,
        e=f"billing@{slug}.example",
        mm=max_models,
        mu=max_users,
    )
    for role in ("admin", "developer", "viewer"):
        uid = ins(
            "INSERT INTO users (email, first_name, last_name) VALUES (:e, :f, 'Test')",
            e=f"{role}@{slug}.example",
            f=role.title(),
        )
        t.ids[role] = uid
        ins(
            "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES (:o, :u, :r)",
            o=t["org"],
            u=uid,
            r=role,
        )
    t.ids["project"] = ins(
        "INSERT INTO projects (organization_id, name, slug, created_by) VALUES (:o, 'Fraud', 'fraud', :u)",
        o=t["org"],
        u=t["admin"],
    )
    t.ids["project_member"] = ins(
        "INSERT INTO project_members (project_id, user_id, role, added_by) VALUES (:p, :u, 'contributor', :a)",
        p=t["project"],
        u=t["developer"],
        a=t["admin"],
    )
    t.ids["model"] = ins(
        "INSERT INTO models (organization_id, project_id, name, description, model_type, framework, created_by) "
        "VALUES (:o, :p, 'Fraud Model', 'gradient boosted fraud scorer', 'classification', 'xgboost', :u)",
        o=t["org"],
        p=t["project"],
        u=t["admin"],
    )
    for version, stage, auc in (
        ("1.0.0", "production", 0.96),
        ("1.1.0", "staging", 0.97),
        ("1.2.0", "development", 0.95),
    ):
        key = "v" + version.replace(".", "")
        t.ids[key] = ins(
            "INSERT INTO model_versions (model_id, version, stage, model_file_path, performance_metrics, created_by) "
            "VALUES (:m, :v, :s, :path, CAST(:metrics AS jsonb), :u)",
            m=t["model"],
            v=version,
            s=stage,
            path=f"s3://models/{slug}/{version}/model.bin",
            metrics=f'{{"auc": {auc}, "accuracy": 0.95, "precision": 0.8, "recall": 0.75}}',
            u=t["admin"],
        )
        t.ids[f"transition_{key}"] = ins(
            "INSERT INTO model_stage_transitions (organization_id, model_id, model_version_id, from_stage, to_stage, "
            "created_at) VALUES (:o, :m, :v, NULL, :s, now() - interval '3 days')",
            o=t["org"],
            m=t["model"],
            v=t[key],
            s=stage,
        )
    t.ids["experiment"] = ins(
        "INSERT INTO experiments (organization_id, project_id, model_id, name, description, created_by) "
        "VALUES (:o, :p, :m, 'tuning', 'learning rate sweep', :u)",
        o=t["org"],
        p=t["project"],
        m=t["model"],
        u=t["admin"],
    )
    t.ids["run"] = ins("INSERT INTO experiment_runs (experiment_id, run_name) VALUES (:e, 'lr=0.1')", e=t["experiment"])
    t.ids["run_metric"] = ins(
        "INSERT INTO run_metrics (run_id, metric_name, value, step) VALUES (:r, 'loss', 0.3, 1)", r=t["run"]
    )
    for env, key in (("production", "v100"), ("staging", "v110")):
        t.ids[f"deployment_{env}"] = ins(
            "INSERT INTO deployments (organization_id, project_id, model_version_id, name, environment, status, "
            "created_by) VALUES (:o, :p, :v, :n, :env, 'active', :u)",
            o=t["org"],
            p=t["project"],
            v=t[key],
            n=f"fraud-api-{env}",
            env=env,
            u=t["admin"],
        )
    t.ids["history"] = ins(
        "INSERT INTO deployment_history (deployment_id, model_version_id, action, status, performed_by) "
        "VALUES (:d, :v, 'deploy', 'completed', :u)",
        d=t["deployment_production"],
        v=t["v100"],
        u=t["admin"],
    )
    t.ids["monitoring"] = ins(
        "INSERT INTO model_monitoring (deployment_id, metric_name, value) VALUES (:d, 'latency_p95_ms', 41.0)",
        d=t["deployment_production"],
    )
    if _exists(conn, "model_monitoring_aggregation_state"):  # the zero-downtime test seeds older revisions
        conn.execute(
            text("INSERT INTO model_monitoring_aggregation_state (organization_id, last_run_at) VALUES (:o, now())"),
            {"o": t["org"]},
        )
    t.ids["rollup"] = ins(
        "INSERT INTO model_monitoring_rollups (deployment_id, metric_name, granularity, bucket_start, sample_count, "
        "value_sum, value_min, value_max, value_mean, p50, p95, p99) "
        "VALUES (:d, 'latency_p95_ms', 'hour', date_trunc('hour', now()), 1, 41, 41, 41, 41, 41, 41, 41)",
        d=t["deployment_production"],
    )
    t.ids["drift_report"] = ins(
        "INSERT INTO data_drift_reports (deployment_id, drift_score, is_drift_detected, period_start, period_end) "
        "VALUES (:d, 0.0, false, now() - interval '1 hour', now())",
        d=t["deployment_staging"],
    )
    t.ids["alert"] = ins(
        "INSERT INTO alerts (organization_id, deployment_id, alert_type, severity, title, message) "
        "VALUES (:o, :d, 'high_latency', 'medium', 'slow', 'p95 above 50 ms')",
        o=t["org"],
        d=t["deployment_production"],
    )
    t.ids["api_key"] = ins(
        "INSERT INTO api_keys (organization_id, user_id, name, key_hash, key_prefix) "
        "VALUES (:o, :u, 'ci', :h, 'mlk_test')",
        o=t["org"],
        u=t["developer"],
        h=f"sha256:{uuid.uuid4().hex}",
    )
    t.ids["audit"] = ins(
        "INSERT INTO audit_logs (organization_id, user_id, action, resource_type) VALUES (:o, :u, 'test.seed', 'test')",
        o=t["org"],
        u=t["admin"],
    )
    t.ids["channel"] = ins(
        "INSERT INTO notification_channels (organization_id, name, type, configuration, created_by) "
        "VALUES (:o, 'ops', 'webhook', '{}', :u)",
        o=t["org"],
        u=t["admin"],
    )
    t.ids["rule"] = ins(
        "INSERT INTO notification_rules (organization_id, project_id, channel_id, trigger_type, created_by) "
        "VALUES (:o, :p, :c, 'alert', :u)",
        o=t["org"],
        p=t["project"],
        c=t["channel"],
        u=t["admin"],
    )
    t.ids["event"] = ins(
        "INSERT INTO notification_events (organization_id, project_id, trigger_type, event_type) "
        "VALUES (:o, :p, 'alert', 'test.event')",
        o=t["org"],
        p=t["project"],
    )
    if not _exists(conn, "retention_archives"):
        return t
    t.ids["retention_archive"] = ins(
        "INSERT INTO retention_archives (organization_id, category, period, object_key, row_count, checksum) "
        "VALUES (:o, 'audit_logs', '2023-01', :k, 1, :c)",
        o=t["org"],
        k=f"retention/audit_logs/{slug}/2023-01.parquet",
        c="0" * 64,
    )
    if not _exists(conn, "notification_deliveries"):
        return t
    t.ids["delivery"] = ins(
        "INSERT INTO notification_deliveries (organization_id, event_id, channel_id, rule_id, status) "
        "VALUES (:o, :e, :c, :r, 'delivered')",
        o=t["org"],
        e=t["event"],
        c=t["channel"],
        r=t["rule"],
    )
    t.ids["alert_state"] = ins(
        "INSERT INTO notification_alert_state (organization_id, alert_id, channel_id, last_notified_at) "
        "VALUES (:o, :a, :c, now())",
        o=t["org"],
        a=t["alert"],
        c=t["channel"],
    )
    return t


def act_as(conn: Connection, organization_id: uuid.UUID | None) -> None:
    """Switch the current transaction to the application role scoped to `organization_id` (None: unscoped)."""
    conn.execute(
        text("SELECT set_config('role', 'mlops_app', true), set_config('app.organization_id', :o, true)"),
        {"o": str(organization_id) if organization_id else ""},
    )


def act_as_owner(conn: Connection) -> None:
    conn.execute(text("RESET ROLE"))


class Db:
    """Raw SQL against a test's own database, each call in its own connection (what a test asserts on)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=pool.NullPool)

    def all(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).mappings().all()

    def one(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def run(self, sql: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def close(self) -> None:
        self.engine.dispose()
