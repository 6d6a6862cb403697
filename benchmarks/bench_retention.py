"""Retention: our archive-verify-delete against a bare `COPY (SELECT ...) TO STDOUT` + `DELETE` of the same rows.

One organization holds 1M expired audit rows (about eleven months, three years old) and 5M expired raw
monitoring points (20 series, 30 days, 100+ days old) with complete hourly and daily rollups. The data is
loaded once and cloned (`CREATE DATABASE ... TEMPLATE`), so both sides start from the same pages:

- bare: one `COPY (SELECT * FROM audit_logs WHERE ...) TO STDOUT` read to the end, one `DELETE` of those audit
  rows, one `DELETE` of those monitoring points; nothing written anywhere, nothing verified;
- ours: the `enforce-retention` flow (Parquet + zstd per month into a local artifact store, read back, checksum,
  manifest, ledger, batched deletes; monitoring deleted where the rollups are complete, window by window).

Meanwhile a writer inserts audit rows (one per transaction, every 10 ms) and records each insert's latency.
`BENCH_RETENTION_SCALE=0.01` runs it small while developing.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow

from benchmarks.common import print_table, write_results

SCALE = float(os.environ.get("BENCH_RETENTION_SCALE", "1"))
AUDIT_ROWS = int(1_000_000 * SCALE)
SERIES = 20  # 10 deployments x 2 metrics
POINTS_PER_SERIES = int(250_000 * SCALE)
SOURCE = "bench_retention_src"


def _admin() -> tuple[str, object]:
    from sqlalchemy.engine import make_url

    from core.settings import normalize_database_url
    from db.embedded import server_url

    given = os.environ.get("DATABASE_URL")
    if given:
        admin = make_url(normalize_database_url(given)).set(database="postgres")
    else:
        uri = server_url(Path(tempfile.mkdtemp(prefix="bench-retention-")) / "pgdata", cleanup_mode="delete")
        admin = make_url(uri).set(drivername="postgresql+psycopg")
    return admin.set(drivername="postgresql").render_as_string(hide_password=False), admin


def _load(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        one = lambda sql, *args: conn.execute(sql, args).fetchone()[0]  # noqa: E731
        org = one(
            "INSERT INTO organizations (name, slug, billing_email) VALUES ('Bench', 'bench', 'b@x.example') "
            "RETURNING id"
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
            for i in range(SERIES // 2)
        ]
        conn.execute(
            "INSERT INTO audit_logs (organization_id, user_id, action, resource_type, resource_id, details, "
            "ip_address, user_agent, created_at) SELECT %s, %s, 'model_version.promote', 'model_version', "
            "gen_random_uuid(), jsonb_build_object('to_stage', 'production', 'gate', g %% 7, 'reason', "
            "'auc +0.004 over the incumbent'), '10.20.30.40', 'mlops-cli/0.1.0', "
            "now() - interval '3 years' + g * interval '29 seconds' / %s FROM generate_series(1, %s) g",
            (org, user, SCALE, AUDIT_ROWS),
        )
        conn.execute(
            "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
            "SELECT d::uuid, m, random() * 100, now() - interval '130 days' + g * interval '10 seconds' / %s "
            "FROM unnest(%s::text[]) d, unnest(ARRAY['latency_p95_ms', 'error_rate']) m, generate_series(1, %s) g",
            (SCALE, deployments, POINTS_PER_SERIES),
        )
        for granularity in ("hour", "day"):
            conn.execute(
                "INSERT INTO model_monitoring_rollups (deployment_id, metric_name, granularity, bucket_start, "
                "sample_count, value_sum, value_min, value_max, value_mean, p50, p95, p99) "
                "SELECT deployment_id, metric_name, %s, date_trunc(%s, recorded_at, 'UTC'), count(*), sum(value), "
                "min(value), max(value), avg(value), avg(value), max(value), max(value) FROM model_monitoring "
                "GROUP BY 1, 2, 4",
                (granularity, granularity),
            )
        conn.execute("VACUUM ANALYZE")


class Writer(threading.Thread):
    """Inserts one audit row per transaction every 10 ms and records how long each insert took."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.latencies = url, threading.Event(), []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            org = conn.execute("SELECT id FROM organizations WHERE slug = 'bench'").fetchone()[0]
            while not self.stop.is_set():
                start = time.perf_counter()
                conn.execute(
                    "INSERT INTO audit_logs (organization_id, action, resource_type) "
                    "VALUES (%s, 'deployment.update', 'deployment')",
                    (org,),
                )
                self.latencies.append(time.perf_counter() - start)
                time.sleep(0.01)


def _with_writer(url: str, work) -> tuple[float, list[float]]:
    writer = Writer(url)
    writer.start()
    time.sleep(0.5)
    start = time.perf_counter()
    work()
    elapsed = time.perf_counter() - start
    writer.stop.set()
    writer.join()
    return elapsed, writer.latencies


def _bare(url: str) -> None:
    with psycopg.connect(url) as conn:
        org = conn.execute("SELECT id FROM organizations WHERE slug = 'bench'").fetchone()[0]
        where = "organization_id = %s AND created_at < now() - interval '730 days'"
        with conn.cursor().copy(f"COPY (SELECT * FROM audit_logs WHERE {where}) TO STDOUT", (org,)) as copy:
            for _ in copy:
                pass
        conn.execute(f"DELETE FROM audit_logs WHERE {where}", (org,))
        conn.execute(
            "DELETE FROM model_monitoring WHERE organization_id = %s AND recorded_at < "
            "date_trunc('hour', now() - interval '90 days')",
            (org,),
        )
        conn.commit()


def _ours(url: str, artifacts: Path) -> dict:
    from sqlalchemy.engine import make_url

    from db.session import dispose_engines
    from flows.retention import enforce_retention  # imported by main() before the clock starts

    os.environ["DATABASE_URL"] = make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    os.environ["MLOPS_ARTIFACT_URI"] = artifacts.as_uri()
    dispose_engines()
    summary = enforce_retention.fn(organization="bench", as_of=datetime.now(UTC))
    report = summary["organizations"][0]
    assert report["status"] == "ok", report
    return {c["category"]: c["count"] for c in report["categories"]}


def _counts(url: str) -> tuple[int, int]:
    audit = "SELECT count(*) FROM audit_logs WHERE created_at < now() - interval '730 days'"
    raw = "SELECT count(*) FROM model_monitoring WHERE recorded_at < now() - interval '90 days'"
    with psycopg.connect(url) as conn:
        return conn.execute(audit).fetchone()[0], conn.execute(raw).fetchone()[0]


def main() -> dict:
    from db import migrate
    from flows import retention  # noqa: F401  (import time, Prefect's and Arrow's, is not retention's work)
    from services import storage  # noqa: F401

    pyarrow.array([0])  # Arrow imports pandas on its first Python conversion: a one-off, not per run
    from tasks.retention import service as retention_run  # noqa: F401

    admin_libpq, admin = _admin()
    with psycopg.connect(admin_libpq, autocommit=True) as conn:
        for name in (SOURCE, "bench_retention_bare", "bench_retention_ours"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SOURCE}")
    source = admin.set(database=SOURCE)
    migrate.upgrade(url=source.render_as_string(hide_password=False))
    source_libpq = source.set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    _load(source_libpq)
    load_s = time.perf_counter() - started
    with psycopg.connect(admin_libpq, autocommit=True) as conn:
        for name in ("bench_retention_bare", "bench_retention_ours"):
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {SOURCE} STRATEGY FILE_COPY")
    bare_url = admin.set(database="bench_retention_bare", drivername="postgresql").render_as_string(False)
    ours_url = admin.set(database="bench_retention_ours", drivername="postgresql").render_as_string(False)
    expired = _counts(bare_url)

    bare_s, bare_lat = _with_writer(bare_url, lambda: _bare(bare_url))
    artifacts = Path(tempfile.mkdtemp(prefix="bench-retention-store-"))
    counts: dict = {}
    ours_s, ours_lat = _with_writer(ours_url, lambda: counts.update(_ours(ours_url, artifacts)))
    assert _counts(ours_url) == (0, 0), _counts(ours_url)
    assert counts["audit_logs"] == expired[0] and counts["monitoring_raw"] == expired[1], (counts, expired)
    archive_bytes = sum(p.stat().st_size for p in artifacts.rglob("*.parquet"))

    def p99(values: list[float]) -> float:
        return statistics.quantiles(values, n=100)[98] if len(values) > 1 else max(values, default=0.0)

    rows = [
        [
            "bare COPY + DELETE",
            f"{bare_s:.1f}",
            "1.00",
            f"{max(bare_lat) * 1000:.1f}",
            f"{p99(bare_lat) * 1000:.1f}",
            len(bare_lat),
        ],
        [
            "enforce-retention",
            f"{ours_s:.1f}",
            f"{ours_s / bare_s:.2f}",
            f"{max(ours_lat) * 1000:.1f}",
            f"{p99(ours_lat) * 1000:.1f}",
            len(ours_lat),
        ],
    ]
    print_table(
        f"Retention: {expired[0]:,} expired audit rows + {expired[1]:,} expired monitoring points "
        f"(load {load_s:.0f} s; archives {archive_bytes / 1e6:.1f} MB Parquet+zstd)",
        ["run", "seconds", "x bare", "writer max ms", "writer p99 ms", "writer inserts"],
        rows,
    )
    results = {
        "audit_rows": expired[0],
        "monitoring_points": expired[1],
        "bare_seconds": bare_s,
        "ours_seconds": ours_s,
        "ratio": ours_s / bare_s,
        "writer_max_ms_bare": max(bare_lat) * 1000,
        "writer_max_ms_ours": max(ours_lat) * 1000,
        "writer_p99_ms_ours": p99(ours_lat) * 1000,
        "writer_inserts_ours": len(ours_lat),
        "archive_bytes": archive_bytes,
        "scale": SCALE,
    }
    write_results("bench_retention" if SCALE == 1 else f"bench_retention_scale_{SCALE:g}", results)
    with psycopg.connect(admin_libpq, autocommit=True) as conn:
        for name in (SOURCE, "bench_retention_bare", "bench_retention_ours"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return results


if __name__ == "__main__":
    main()
