"""Row-level security on the hot monitoring table: what the tenant policy costs, and why it is denormalized.

`model_monitoring` (the largest table: model servers write it, aggregation reads it) carries a denormalized
`organization_id` kept by a trigger (migration 0006), and its policy compares that column. This runs the
same queries as the owner with the organization filter written into the query exactly as the policy states it
(no RLS: the baseline), and as the application role under the policy; so the ratio is what RLS itself costs,
not a different filter. The same pair runs on a copy whose policy and baseline look the deployment up per row
(the design 0006 replaced). All return the same rows. Median of several runs.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from statistics import median

import psycopg

from benchmarks.common import print_table, write_results

ROWS_PER_DEPLOYMENT = 50_000
DEPLOYMENTS_PER_ORG = 10
REPEAT = 21
SCOPE = "SELECT set_config('role', 'mlops_app', true), set_config('app.organization_id', %(org)s, true)"
# the baselines spell out the filter each policy applies: the column on the real table, the parent on the copy
OWN = "organization_id = %(org)s"
OWN_THROUGH_DEPLOYMENTS = "deployment_id IN (SELECT id FROM deployments WHERE organization_id = %(org)s)"

# name -> (query as the tenant, the same query as the owner with the organization filter spelled out)
QUERIES = {
    "one deployment, 24 h, by metric": (
        "SELECT metric_name, avg(value), count(*) FROM model_monitoring WHERE deployment_id = %(deployment)s "
        "AND recorded_at >= %(since)s GROUP BY metric_name",
        f"SELECT metric_name, avg(value), count(*) FROM model_monitoring WHERE deployment_id = %(deployment)s "
        f"AND recorded_at >= %(since)s AND {OWN} GROUP BY metric_name",
    ),
    "organization, 24 h, by deployment": (
        "SELECT deployment_id, metric_name, avg(value), count(*) FROM model_monitoring "
        "WHERE recorded_at >= %(since)s GROUP BY deployment_id, metric_name",
        f"SELECT deployment_id, metric_name, avg(value), count(*) FROM model_monitoring "
        f"WHERE recorded_at >= %(since)s AND {OWN} GROUP BY deployment_id, metric_name",
    ),
    "latest point per deployment and metric": (
        "SELECT DISTINCT ON (deployment_id, metric_name) deployment_id, metric_name, value FROM model_monitoring "
        "WHERE recorded_at >= %(recent)s ORDER BY deployment_id, metric_name, recorded_at DESC",
        f"SELECT DISTINCT ON (deployment_id, metric_name) deployment_id, metric_name, value FROM model_monitoring "
        f"WHERE recorded_at >= %(recent)s AND {OWN} ORDER BY deployment_id, metric_name, recorded_at DESC",
    ),
}
# The alternative: the same rows without the column, and a policy through the parent deployment.
THROUGH_DEPLOYMENTS = """
CREATE TABLE mm_through_deployments AS SELECT id, deployment_id, metric_name, value, threshold_min, threshold_max,
    is_anomaly, recorded_at, created_at FROM model_monitoring ORDER BY ctid;  -- the same physical order
ALTER TABLE mm_through_deployments ALTER COLUMN id SET DEFAULT gen_random_uuid(),
    ALTER COLUMN recorded_at SET DEFAULT now(), ALTER COLUMN created_at SET DEFAULT now();
CREATE INDEX ON mm_through_deployments (deployment_id, metric_name, recorded_at);
CREATE INDEX ON mm_through_deployments (deployment_id, recorded_at);
ALTER TABLE mm_through_deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON mm_through_deployments
    USING (EXISTS (SELECT 1 FROM deployments p WHERE p.id = deployment_id))
    WITH CHECK (EXISTS (SELECT 1 FROM deployments p WHERE p.id = deployment_id));
GRANT SELECT, INSERT ON mm_through_deployments TO mlops_app;
"""
INSERT = (
    "INSERT INTO model_monitoring (deployment_id, metric_name, value) "
    "SELECT %(deployment)s, 'latency_p95_ms', g FROM generate_series(1, 20000) g"
)


def _database() -> str:
    """A fresh, migrated database on DATABASE_URL's server, or on a throwaway embedded server."""
    from sqlalchemy.engine import make_url

    from core.settings import normalize_database_url
    from db import migrate
    from db.embedded import server_url

    given = os.environ.get("MLOPS_MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL")  # the owner
    if given:
        admin = make_url(normalize_database_url(given)).set(database="postgres")
    else:
        uri = server_url(Path(tempfile.mkdtemp(prefix="bench-rls-")) / "pgdata", cleanup_mode="delete")
        admin = make_url(uri).set(drivername="postgresql+psycopg")
    libpq = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_rls WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_rls")
    target = admin.set(database="bench_rls")
    migrate.upgrade(url=target.render_as_string(hide_password=False))
    return target.set(drivername="postgresql").render_as_string(hide_password=False)


def _load(conn: psycopg.Connection) -> list[tuple[str, list[str]]]:
    """Two organizations, each with DEPLOYMENTS_PER_ORG deployments of ROWS_PER_DEPLOYMENT points."""
    orgs = []
    for slug in ("alpha", "beta"):
        one = lambda sql, *args: conn.execute(sql, args).fetchone()[0]  # noqa: E731
        org = one(
            "INSERT INTO organizations (name, slug, billing_email) VALUES (%s, %s, 'b@x.example') RETURNING id",
            slug,
            slug,
        )
        user = one(
            "INSERT INTO users (email, first_name, last_name) VALUES (%s, 'A', 'B') RETURNING id", f"a@{slug}.example"
        )
        conn.execute(
            "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES (%s, %s, 'admin')",
            (org, user),
        )
        project = one(
            "INSERT INTO projects (organization_id, name, slug, created_by) VALUES (%s, 'p', 'p', %s) RETURNING id",
            org,
            user,
        )
        model = one(
            "INSERT INTO models (organization_id, project_id, name, model_type, framework, created_by) "
            "VALUES (%s, %s, 'm', 'classification', 'xgboost', %s) RETURNING id",
            org,
            project,
            user,
        )
        version = one(
            "INSERT INTO model_versions (model_id, version, model_file_path, created_by) "
            "VALUES (%s, '1.0.0', 'x', %s) RETURNING id",
            model,
            user,
        )
        deployments = [
            str(
                one(
                    "INSERT INTO deployments (organization_id, project_id, model_version_id, name, environment, "
                    "created_by) VALUES (%s, %s, %s, %s, 'production', %s) RETURNING id",
                    org,
                    project,
                    version,
                    f"d{i}",
                    user,
                )
            )
            for i in range(DEPLOYMENTS_PER_ORG)
        ]
        conn.execute(
            "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
            "SELECT d, (ARRAY['latency_p95_ms','error_rate','throughput_rps'])[1 + g %% 3], random() * 100, "
            "now() - make_interval(secs => g * 5) FROM unnest(%s::uuid[]) d, generate_series(1, %s) g",
            (deployments, ROWS_PER_DEPLOYMENT),
        )
        orgs.append((str(org), deployments))
    return orgs


def _time(
    conn: psycopg.Connection, sql: str, params: dict, *, scoped: bool, rollback: bool = False
) -> tuple[float, int]:
    samples, rows = [], 0
    if not rollback:  # one unmeasured run: plans and buffers warm
        with conn.transaction(force_rollback=True):
            if scoped:
                conn.execute(SCOPE, params)
            conn.execute(sql, params).fetchall()
    for _ in range(3 if rollback else REPEAT):
        with conn.transaction(force_rollback=rollback):
            if scoped:
                conn.execute(SCOPE, params)
            start = time.perf_counter()
            cursor = conn.execute(sql, params)
            rows = cursor.rowcount if rollback else len(cursor.fetchall())
            samples.append(time.perf_counter() - start)
    return median(samples), rows


def main() -> dict:
    url = _database()
    with psycopg.connect(url, autocommit=True) as conn:
        orgs = _load(conn)
        conn.execute(THROUGH_DEPLOYMENTS)
        conn.execute("VACUUM ANALYZE")
        total = conn.execute("SELECT count(*) FROM model_monitoring").fetchone()[0]
    org, deployments = orgs[0]
    table, results = [], {}
    with psycopg.connect(url) as conn:
        since, recent = conn.execute("SELECT now() - interval '1 day', now() - interval '10 minutes'").fetchone()
        conn.rollback()
        params = {"org": org, "deployment": deployments[0], "since": since, "recent": recent}
        # the baseline must really run without RLS: every tenant table has FORCE ROW LEVEL SECURITY, so only a
        # superuser or a BYPASSRLS role escapes the policy (an owner that is neither would measure RLS twice)
        bypass = conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        conn.rollback()
        if not bypass[0]:
            raise SystemExit("bench_rls needs a superuser or BYPASSRLS connection for its no-RLS baseline")
        cases = [(name, tenant, owner, False) for name, (tenant, owner) in QUERIES.items()]
        cases.append(("insert 20,000 points (WITH CHECK)", INSERT, INSERT, True))
        for name, tenant_sql, owner_sql, is_write in cases:
            owner_s, owner_rows = _time(conn, owner_sql, params, scoped=False, rollback=is_write)
            tenant_s, tenant_rows = _time(conn, tenant_sql, params, scoped=True, rollback=is_write)
            assert owner_rows == tenant_rows, (name, owner_rows, tenant_rows)
            if is_write:  # the copy has neither the foreign keys nor the trigger: its inserts do not compare
                table.append(
                    [
                        name,
                        f"{owner_s * 1000:.2f}",
                        f"{tenant_s * 1000:.2f}",
                        f"{tenant_s / owner_s:.2f}",
                        "",
                        "",
                        "",
                        tenant_rows,
                    ]
                )
                results[name] = {
                    "no_rls_ms": owner_s * 1000,
                    "rls_denormalized_ms": tenant_s * 1000,
                    "ratio_denormalized": tenant_s / owner_s,
                    "rows": tenant_rows,
                }
                continue
            parent_sql = tenant_sql.replace("model_monitoring", "mm_through_deployments")
            parent_owner_sql = owner_sql.replace(OWN, OWN_THROUGH_DEPLOYMENTS).replace(
                "model_monitoring", "mm_through_deployments"
            )
            parent_owner_s, _ = _time(conn, parent_owner_sql, params, scoped=False)
            parent_s, parent_rows = _time(conn, parent_sql, params, scoped=True)
            assert parent_rows == tenant_rows, (name, parent_rows, tenant_rows)
            table.append(
                [
                    name,
                    f"{owner_s * 1000:.2f}",
                    f"{tenant_s * 1000:.2f}",
                    f"{tenant_s / owner_s:.2f}",
                    f"{parent_owner_s * 1000:.2f}",
                    f"{parent_s * 1000:.2f}",
                    f"{parent_s / parent_owner_s:.2f}",
                    tenant_rows,
                ]
            )
            results[name] = {
                "no_rls_ms": owner_s * 1000,
                "rls_denormalized_ms": tenant_s * 1000,
                "no_rls_through_deployments_ms": parent_owner_s * 1000,
                "rls_through_deployments_ms": parent_s * 1000,
                "ratio_denormalized": tenant_s / owner_s,
                "ratio_through_deployments": parent_s / parent_owner_s,
                "rows": tenant_rows,
            }
    print_table(
        f"RLS on model_monitoring: {total:,} rows, 2 organizations x {DEPLOYMENTS_PER_ORG} deployments",
        [
            "query",
            "no RLS ms",
            "RLS (organization_id) ms",
            "ratio",
            "no RLS via deployments ms",
            "RLS via deployments ms",
            "ratio",
            "rows",
        ],
        table,
    )
    write_results("rls", {"monitoring_rows": total, "queries": results})
    return results


if __name__ == "__main__":
    main()
