"""Metric aggregation against PostgreSQL itself: a bare GROUP BY vs our backfill vs an incremental run.

10M monitoring points (20 deployments x 3 metrics x 90 days) generated with `generate_series`, then, in one run:
(a) a bare `SELECT ... GROUP BY date_trunc('hour' | 'day', ...)` computing the same statistics with
    `percentile_cont` (what PostgreSQL needs just to compute the rollups),
(b) our full backfill of hourly and daily rollups (flow aggregate-metrics, first run of an organization),
(c) an incremental run after 10k new points: 9k in the current hour, 1k late ones spread over the last day.
Targets: (b) <= 1.5 x (a); (c) under 1 % of (b). `BENCH_AGG_POINTS` scales the data (default 10,000,000).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.common import print_table, write_results

POINTS = int(os.environ.get("BENCH_AGG_POINTS", "10000000"))
DEPLOYMENTS = 20
METRICS = ("latency_ms", "error_rate", "accuracy")
DAYS = 90
STATS = """
    count(*), sum(value), min(value), max(value), avg(value),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY value), percentile_cont(0.95) WITHIN GROUP (ORDER BY value),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY value), count(*) FILTER (WHERE is_anomaly)
"""


def _database() -> tuple[str, str]:
    """(libpq URI, SQLAlchemy URL) of a fresh migrated database on DATABASE_URL's server or a throwaway one."""
    from sqlalchemy.engine import make_url

    from core.settings import normalize_database_url
    from db import migrate
    from db.embedded import server_url

    given = os.environ.get("DATABASE_URL")
    if given:
        admin = make_url(normalize_database_url(given)).set(database="postgres")
    else:
        uri = server_url(Path(tempfile.mkdtemp(prefix="bench-agg-")) / "pgdata", cleanup_mode="delete")
        admin = make_url(uri).set(drivername="postgresql+psycopg")
    libpq = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_aggregation WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_aggregation")
    target = admin.set(database="bench_aggregation")
    url = target.render_as_string(hide_password=False)
    migrate.upgrade(url=url)
    return target.set(drivername="postgresql").render_as_string(hide_password=False), url


def _load(conn: psycopg.Connection) -> list[str]:
    one = lambda sql, *args: conn.execute(sql, args).fetchone()[0]  # noqa: E731
    org = one(
        "INSERT INTO organizations (name, slug, billing_email) VALUES ('Bench', 'bench', 'b@x.example') RETURNING id"
    )
    user = one("INSERT INTO users (email, first_name, last_name) VALUES ('a@bench.example', 'A', 'B') RETURNING id")
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
        "INSERT INTO model_versions (model_id, version, model_file_path, created_by) VALUES (%s, '1.0.0', 'x', %s) "
        "RETURNING id",
        model,
        user,
    )
    deployments = []
    per_series = POINTS // (DEPLOYMENTS * len(METRICS))
    step = DAYS * 86400 / per_series
    for i in range(DEPLOYMENTS):
        dep = one(
            "INSERT INTO deployments (organization_id, project_id, model_version_id, name, environment, status, "
            "created_by) VALUES (%s, %s, %s, %s, 'production', 'active', %s) RETURNING id",
            org,
            project,
            version,
            f"d{i:02d}",
            user,
        )
        deployments.append(str(dep))
        for metric in METRICS:
            conn.execute(
                "INSERT INTO model_monitoring (deployment_id, metric_name, value, threshold_max, recorded_at) "
                "SELECT %s, %s, 20 + ((g * 7919) %% 1000) / 10.0, 115, "
                "       date_trunc('hour', now()) - interval '90 days' + g * %s * interval '1 second' "
                "FROM generate_series(0, %s - 1) g",
                (dep, metric, step, per_series),
            )
        conn.commit()
    # these points stand for data written before the upgrade: no invalidations, the first run backfills
    conn.execute("TRUNCATE model_monitoring_invalidations")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE model_monitoring")
    conn.autocommit = False
    return deployments


def _bare(conn: psycopg.Connection) -> float:
    conn.execute("SET work_mem = '64MB'")  # the same setting our aggregation uses
    start = time.perf_counter()
    for granularity in ("hour", "day"):
        conn.execute(
            f"SELECT deployment_id, metric_name, date_trunc('{granularity}', recorded_at, 'UTC') AS b, {STATS} "
            "FROM model_monitoring GROUP BY 1, 2, 3"
        ).fetchall()
    return time.perf_counter() - start


def _new_points(conn: psycopg.Connection, deployments: list[str]) -> None:
    conn.execute(
        "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
        "SELECT (%s::uuid[])[1 + g %% %s], (%s::text[])[1 + g %% 3], 30 + g %% 50, "
        "       date_trunc('hour', now()) + (g %% 3600) * interval '1 second' "
        "FROM generate_series(0, 8999) g",
        (deployments, len(deployments), list(METRICS)),
    )
    conn.execute(  # late points: committed now, recorded up to a day ago
        "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
        "SELECT (%s::uuid[])[1 + g %% %s], (%s::text[])[1 + g %% 3], 30 + g %% 50, "
        "       now() - (g * 86.4) * interval '1 second' "
        "FROM generate_series(0, 999) g",
        (deployments, len(deployments), list(METRICS)),
    )
    conn.commit()


def main() -> None:
    libpq, url = _database()
    os.environ["DATABASE_URL"] = url
    os.environ["MLOPS_ORCHESTRATE"] = "never"
    from db.session import dispose_engines
    from flows.metric_aggregation import aggregate_metrics

    with psycopg.connect(libpq) as conn:
        t0 = time.perf_counter()
        deployments = _load(conn)
        load = time.perf_counter() - t0
        bare = _bare(conn)
    t0 = time.perf_counter()
    backfill_summary = aggregate_metrics.fn(organization="bench")
    backfill = time.perf_counter() - t0
    with psycopg.connect(libpq) as conn:
        t0 = time.perf_counter()
        _new_points(conn, deployments)
        insert_10k = time.perf_counter() - t0
        rollups = conn.execute("SELECT count(*) FROM model_monitoring_rollups").fetchone()[0]
    t0 = time.perf_counter()
    incremental_summary = aggregate_metrics.fn(organization="bench")
    incremental = time.perf_counter() - t0
    dispose_engines()
    [inc] = incremental_summary["organizations"]
    rows = [
        ("(a) bare GROUP BY hour + day", bare, 1.0, ""),
        ("(b) our full backfill", backfill, backfill / bare, "target <= 1.5x (a)"),
        ("(c) incremental after 10k points", incremental, incremental / backfill, "target < 1% of (b)"),
    ]
    print_table(
        f"Metric aggregation, {POINTS:,} points ({DEPLOYMENTS} deployments x {len(METRICS)} metrics x {DAYS} days)",
        ["run", "seconds", "ratio", "target"],
        rows,
    )
    print(
        f"rollups: {rollups:,}; incremental run recomputed {inc['hour_buckets']} hour and {inc['day_buckets']} day "
        f"buckets; loading took {load:.1f} s; inserting the 10k points (with triggers) took {insert_10k:.3f} s"
    )
    write_results(
        "bench_aggregation",
        {
            "points": POINTS,
            "bare_seconds": bare,
            "backfill_seconds": backfill,
            "backfill_ratio": backfill / bare,
            "incremental_seconds": incremental,
            "incremental_share_of_backfill": incremental / backfill,
            "incremental_hour_buckets": inc["hour_buckets"],
            "incremental_day_buckets": inc["day_buckets"],
            "insert_10k_seconds": insert_10k,
            "rollups": rollups,
            "backfill_summary": backfill_summary["organizations"][0],
        },
    )


if __name__ == "__main__":
    main()
