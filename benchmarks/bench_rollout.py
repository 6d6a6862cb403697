"""Rollout: how fast a failed step is reverted, and what the flow costs around the serving platform's calls.

Against a migrated database seeded with the demo organization and the demo's serving stub on 127.0.0.1:
(a) a failed rollout (the new version never becomes ready): seconds from the failed health verdict to the
    automatic rollback committed (the platform serving the previous version again, history, alert, audit and
    events written), and from the start of the failing step, against the target "under 2 s plus the health
    timeout";
(b) healthy rollouts in 5 steps (bake 0): per step, the seconds spent outside the platform's calls (lease
    renewal, bake query, bookkeeping), and the fixed cost of a rollout (plan, begin, complete).
`BENCH_ROLLOUT_RUNS` sets the repetitions (default 5); medians are reported.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.common import print_table, write_results

RUNS = int(os.environ.get("BENCH_ROLLOUT_RUNS", "5"))
HEALTH_TIMEOUT = 1.0
STEPS = [10, 25, 50, 75, 100]
REF = dict(organization="acme", project="fraud-detection", deployment="fraud-api-prod", environment="production")


def _database() -> str:
    """SQLAlchemy URL of a fresh migrated database on DATABASE_URL's server or a throwaway embedded one."""
    from sqlalchemy.engine import make_url

    from core.settings import normalize_database_url
    from db import migrate
    from db.embedded import server_url

    given = os.environ.get("DATABASE_URL")
    if given:
        admin = make_url(normalize_database_url(given)).set(database="postgres")
    else:
        uri = server_url(Path(tempfile.mkdtemp(prefix="bench-rollout-")) / "pgdata", cleanup_mode="delete")
        admin = make_url(uri).set(drivername="postgresql+psycopg")
    with psycopg.connect(
        admin.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    ) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_rollout WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_rollout")
    url = admin.set(database="bench_rollout").render_as_string(hide_password=False)
    migrate.upgrade(url=url)
    return url


def _configure(url: str, stub) -> None:
    import json

    from sqlalchemy import create_engine, pool, text

    serving = {
        "backend": "http",
        "control_url": stub.control_url("fraud-api-prod"),
        "steps": STEPS,
        "bake_seconds": 0,
        "health_timeout_seconds": HEALTH_TIMEOUT,
        "poll_interval_seconds": 0.05,
    }
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE deployments SET endpoint_url = :e, deployment_config = deployment_config || "
                "jsonb_build_object('serving', CAST(:c AS jsonb)) WHERE name = 'fraud-api-prod'"
            ),
            {"e": stub.endpoint_url("fraud-api-prod"), "c": json.dumps(serving)},
        )
    engine.dispose()


def main() -> None:
    os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="bench-rollout-home-"))
    url = _database()
    os.environ["DATABASE_URL"] = url
    os.environ["MLOPS_ORCHESTRATE"] = "never"
    from core.errors import RolloutFailed
    from db.session import dispose_engines
    from demo.seed import ADMIN, seed_demo
    from demo.serving_stub import ServingStub
    from flows.rollout import rollout_deployment
    from tasks.rollout import service as rollout_tasks

    seed_demo()
    stub = ServingStub().start()
    _configure(url, stub)

    # (b) healthy rollouts back and forth: 1.1.0 (staging, forced) then 1.0.0 (production)
    per_step, fixed, totals = [], [], []
    for run in range(RUNS * 2):
        version = "1.1.0" if run % 2 == 0 else "1.0.0"
        started = time.perf_counter()
        summary = rollout_deployment.fn(**REF, version=version, force=version == "1.1.0", reason="bench", actor=ADMIN)
        total = time.perf_counter() - started
        steps = summary["steps"]
        per_step += [s["seconds"] - s["backend_seconds"] for s in steps]
        fixed.append(total - sum(s["seconds"] for s in steps))
        totals.append(total)

    # (a) failed rollouts: 1.2.0 never becomes ready
    stub.unready = {"1.2.0"}
    real_step = rollout_tasks.step
    marks: dict[str, float] = {}

    def timed_step(change, index, percent):
        marks["step_started"] = time.perf_counter()
        result = real_step(change, index, percent)
        marks["verdict"] = time.perf_counter()
        return result

    rollout_tasks.step = timed_step
    to_rollback, from_step = [], []
    for _ in range(RUNS):
        try:
            rollout_deployment.fn(**REF, version="1.2.0", force=True, reason="bench", actor=ADMIN)
            raise SystemExit("the rollout of an unready version succeeded")
        except RolloutFailed:
            done = time.perf_counter()
        to_rollback.append(done - marks["verdict"])
        from_step.append(done - marks["step_started"])
    rollout_tasks.step = real_step
    stub.stop()
    dispose_engines()

    med = statistics.median
    rows = [
        ("(a) failed health verdict -> rollback committed", med(to_rollback), "< 2 s"),
        ("(a) failing step start -> rollback committed", med(from_step), f"< {HEALTH_TIMEOUT + 2:g} s (2 s + timeout)"),
        ("(b) flow overhead per step (outside platform calls)", med(per_step), ""),
        ("(b) fixed cost per rollout (plan, begin, complete)", med(fixed), ""),
        (f"(b) healthy {len(STEPS)}-step rollout, total", med(totals), ""),
    ]
    print_table(
        f"Rollout, demo deployment, serving stub on 127.0.0.1, health timeout {HEALTH_TIMEOUT:g} s, median of {RUNS}",
        ["measure", "seconds", "target"],
        rows,
    )
    write_results(
        "bench_rollout",
        {
            "runs": RUNS,
            "health_timeout_seconds": HEALTH_TIMEOUT,
            "steps": STEPS,
            "failed_verdict_to_rollback_seconds": to_rollback,
            "failing_step_to_rollback_seconds": from_step,
            "overhead_per_step_seconds": per_step,
            "fixed_per_rollout_seconds": fixed,
            "healthy_rollout_seconds": totals,
        },
    )


if __name__ == "__main__":
    main()
