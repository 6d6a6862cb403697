"""The production path on one machine: a Prefect server whose own database is PostgreSQL, `prefect deploy --all`,
three process workers, 30 flow runs submitted at once (promotions, drift, aggregation and notification dispatch
runs), then a worker killed with SIGKILL in the middle of a run.

Every organization has a signed webhook channel (its settings sealed with the workers' key) on a receiver the
test runs on 127.0.0.1, and rules sending it the promotion and drift events the runs emit.

What it proves: every run ends as expected (promotions Completed or, where a gate rejects, Failed; drift and
dispatch Completed; aggregation Completed, or Cancelled by the deployment's concurrency limit), nothing is done
twice in the shared schema (stage transitions, audit rows, drift reports, alerts, rollups), every event is
delivered exactly once per channel (one `delivered` row, one message at the receiver per `webhook-id`, as many
messages as delivered rows, each signature valid), and the work of a killed run is not lost: its claims roll
back with its transaction and the next run finishes them. (A dispatch run killed mid-send is tested without
Prefect, in tests/flows/test_notification_dispatch.py: here it would add two more flow-run start-ups.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from tests.factories import Db, Tenant, make_tenant
from tests.fixtures.database import role_env
from tests.fixtures.peers import free_port
from tests.flows.notification_peers import Receiver, start_receiver
from tests.flows.test_drift_detection import END, START, configure, frame, log_inputs, put_parquet
from tests.flows.test_notification_dispatch import rule, webhook

# about 3 minutes on an idle 2-core machine; far longer when other suites share the cores
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
TENANTS = [f"t{i}" for i in range(8)]
PASSING = TENANTS[:6]  # 1.1.0 -> production passes its gates
REJECTED = TENANTS[6:]  # a drifted staging deployment blocks 1.1.0's production
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)  # monitoring points from here on, one every 36 s: 100 an hour


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def prefect(env: dict, *args: str) -> None:
    done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def stack(fresh_db, pg_server, tmp_path, monkeypatch) -> Iterator[dict]:
    """A Prefect server on its own PostgreSQL database, the deployments, and three workers (stopped afterwards)."""
    from services.secrets import ensure_key_file

    prefect_db = f"prefect_{uuid.uuid4().hex[:12]}"
    prefect_url = make_url(pg_server.create(prefect_db)).set(drivername="postgresql+asyncpg")
    api = f"http://127.0.0.1:{free_port()}/api"
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_API_KEY", "PREFECT_API_URL")}
    env.update(
        **role_env(fresh_db),
        MLOPS_HOME=str(tmp_path / "home"),
        MLOPS_SECRET_KEY="",  # the key file under MLOPS_HOME, as `mlops db upgrade` makes it
        MLOPS_ARTIFACT_URI=f"file://{tmp_path / 'artifacts'}",
        # the test's webhook receiver listens on 127.0.0.1, which channels may not reach by default
        MLOPS_ALLOWED_NOTIFY_HOSTS="127.0.0.1",
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PWD=str(ROOT),
    )
    server_env = {
        **env,
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_url.render_as_string(hide_password=False),
        "PREFECT_UI_ENABLED": "false",
        # no scheduled runs in the middle of the test: it submits every run itself
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    monkeypatch.setenv("MLOPS_ARTIFACT_URI", env["MLOPS_ARTIFACT_URI"])  # the test writes the drift inputs
    # the test seals channel secrets with the key the workers decrypt them with: one MLOPS_HOME for both
    monkeypatch.setenv("MLOPS_SECRET_KEY", "")
    monkeypatch.setenv("MLOPS_HOME", env["MLOPS_HOME"])
    ensure_key_file()
    worker_env = {**env, "PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    started: list[subprocess.Popen] = []
    try:
        port = api.split(":")[2].split("/")[0]
        server = spawn(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], server_env, tmp_path / "server.log"
        )
        started.append(server)
        wait_healthy(api, server, tmp_path / "server.log")
        prefect(worker_env, "work-pool", "create", "mlops", "--type", "process", "--overwrite")
        prefect(worker_env, "variable", "set", "mlops_checkout", str(ROOT), "--overwrite")  # the pull step's path
        prefect(worker_env, "--no-prompt", "deploy", "--all")
        workers = [
            spawn(
                [PREFECT, "worker", "start", "--pool", "mlops", "--limit", "4", "--name", f"worker-{i}"],
                worker_env,
                tmp_path / f"worker-{i}.log",
            )
            for i in range(3)
        ]
        started += workers
        yield {"api": api, "workers": workers, "db": Db(fresh_db), "logs": tmp_path}
    finally:
        for proc in reversed(started):
            stop(proc)
        pg_server.drop(prefect_db)


def wait_healthy(api: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("the Prefect server did not become healthy:\n" + log.read_text()[-3000:])


def seed(db: Db) -> dict[str, Tenant]:
    """Eight tenants; monitoring points for the aggregation runs; drift configured on every production
    deployment (its inputs drift); two tenants' staging deployments drifted, so their promotions are rejected."""
    from services.storage import open_store

    with db.engine.begin() as conn:
        tenants = {slug: make_tenant(conn, slug) for slug in TENANTS}
        conn.execute(
            text(
                "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
                "SELECT d.id, m, 20 + random() * 30, CAST(:t0 AS timestamptz) + g * interval '36 s' "
                "FROM deployments d, unnest(ARRAY['latency_p95_ms', 'error_rate']) m, generate_series(1, 500) g"
            ),
            {"t0": T0},
        )
        conn.execute(
            text("UPDATE data_drift_reports SET is_drift_detected = true WHERE deployment_id = ANY(:d)"),
            {"d": [tenants[t]["deployment_staging"] for t in REJECTED]},
        )
    store = open_store()
    for slug in TENANTS:
        # tenant-supplied URIs resolve only inside the organization's own part of the store
        reference = put_parquet(store, f"datasets/{slug}/reference.parquet", frame(3000, 1))
        prefix = f"inference-logs/{slug}/production"
        log_inputs(store, prefix, frame(1200, 2, 0.8))
        configure(
            db,
            tenants[slug]["deployment_production"],
            reference_uri=reference,
            inputs_uri=store.uri_for(prefix),
            column_types={"channel": "cat"},
        )
    return tenants


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures and records every arrival."""
    rx, server = start_receiver()
    yield rx
    server.shutdown()
    server.server_close()


def subscribe(db: Db, tenants: dict[str, Tenant], rx: Receiver) -> None:
    """Every tenant's own signed webhook channel (its settings sealed with the workers' key) and rules sending
    it the promotions (`model_update`) and drift alerts (`alert`) the runs emit, one message per event. The
    factory's placeholder rules are switched off and its events count as dispatched already."""
    db.run("UPDATE notification_rules SET is_active = false")
    db.run("UPDATE notification_events SET dispatched_at = now()")
    for slug, t in tenants.items():
        channel = webhook(db, t, rx, f"{slug}-ops")
        for trigger in ("model_update", "alert"):
            rule(db, t, channel, trigger=trigger, conditions={"group_wait": 0})


KEYS: dict[str, str] = {}  # "admin@t0.example" -> its API key: deployment runs authenticate with a key only


def make_keys(db: Db) -> None:
    """An API key for every tenant's admin and developer (as `mlops keys create` makes them)."""
    from services.apikeys import generate_key

    with db.engine.begin() as conn:
        for slug in TENANTS:
            for role in ("admin", "developer"):
                plaintext, prefix, digest = generate_key()
                conn.execute(
                    text(
                        "INSERT INTO api_keys (organization_id, user_id, name, key_hash, key_prefix, permissions) "
                        "SELECT o.id, u.id, 'ci', :h, :p, '{\"scopes\": [\"models:promote\"]}' "
                        "FROM organizations o, users u WHERE o.slug = :slug AND u.email = :email"
                    ),
                    {"h": digest, "p": prefix, "slug": slug, "email": f"{role}@{slug}.example"},
                )
                KEYS[f"{role}@{slug}.example"] = plaintext


def promotion(slug: str, version: str, stage: str, actor: str) -> tuple[str, dict]:
    params = {
        "organization": slug,
        "project": "fraud",
        "model": "Fraud Model",
        "version": version,
        "to_stage": stage,
        "actor": f"{actor}@{slug}.example",  # recorded as "requested by"; the key in the run's env acts
        "rollout": False,  # the registry under load; rolling out needs serving endpoints this test has none of
    }
    return "promote-model/on-demand", params


DISPATCH = "dispatch-notifications/every-minute"


def the_thirty_runs() -> list[tuple[str, dict]]:
    runs = [promotion(t, "1.1.0", "production", "admin") for t in TENANTS]  # 6 pass, 2 rejected
    runs += [promotion(t, "1.2.0", "staging", "developer") for t in TENANTS]
    runs += [promotion(PASSING[0], "1.1.0", "production", "admin")]  # the same promotion twice
    window = {"start": START.isoformat(), "end": END.isoformat()}
    runs += [("detect-drift/hourly", {"organization": t, **window}) for t in PASSING]
    runs += [("aggregate-metrics/every-5-minutes", {"organization": t}) for t in TENANTS[:2]]
    runs += [("aggregate-metrics/every-5-minutes", {})]
    # dispatchers racing the runs that emit the events and each other: t0's twice, and the all-organization
    # one over the same organizations
    runs += [(DISPATCH, {"organization": t}) for t in (PASSING[0], PASSING[0], REJECTED[0])]
    runs += [(DISPATCH, {})]
    assert len(runs) == 30
    return runs


def submit(api: str, name: str, parameters: dict) -> uuid.UUID:
    """Start a run as CI does (`mlops promote --submit`): a promotion carries its actor's key in its env."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    key = KEYS.get(parameters.get("actor", ""))
    jobs = {"env": {"MLOPS_API_KEY": key}} if key else None
    with temporary_settings({PREFECT_API_URL: api}):
        return run_deployment(name, parameters=parameters, timeout=0, job_variables=jobs).id


def wait_terminal(api: str, ids: list[uuid.UUID], timeout: float = 420) -> dict[uuid.UUID, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200)
            states = {r.id: r.state_type.value for r in runs}
            if len(states) == len(ids) and set(states.values()) <= TERMINAL:
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"runs not finished: {sorted(states.values())}")
            time.sleep(1)


def assert_nothing_done_twice(db: Db) -> None:
    # one transition and one audit row per stage change, whatever ran twice or at once
    assert (
        db.one(
            "SELECT count(*) FROM (SELECT model_version_id, to_stage FROM model_stage_transitions "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        == 0
    )
    changes = db.all(
        "SELECT o.slug, v.version, t.to_stage FROM model_stage_transitions t "
        "JOIN model_versions v ON v.id = t.model_version_id JOIN organizations o ON o.id = t.organization_id "
        "WHERE t.from_stage IS NOT NULL"
    )
    expected = {(t, "1.1.0", "production") for t in PASSING} | {(t, "1.0.0", "archived") for t in PASSING}
    expected |= {(t, "1.2.0", "staging") for t in TENANTS}
    assert sorted((c["slug"], c["version"], c["to_stage"]) for c in changes) == sorted(expected)
    audits = db.all(
        "SELECT action, count(*) AS n FROM audit_logs WHERE action LIKE 'model_version.promote%' GROUP BY action"
    )
    assert {a["action"]: a["n"] for a in audits} == {
        "model_version.promote": len(PASSING) + len(TENANTS),  # the repeated promotions were no-ops
        "model_version.promote.rejected": len(REJECTED),
    }
    # the stage of every version is where its last transition put it; one production version per model
    assert (
        db.one(
            "SELECT count(*) FROM model_versions v WHERE v.stage <> (SELECT t.to_stage FROM "
            "model_stage_transitions t WHERE t.model_version_id = v.id ORDER BY t.created_at DESC, t.id DESC "
            "LIMIT 1)"
        )
        == 0
    )
    assert (
        db.one(
            "SELECT max(n) FROM (SELECT count(*) n FROM model_versions WHERE stage = 'production' GROUP BY model_id) p"
        )
        == 1
    )
    # drift: one report per deployment and window, one open drift alert per deployment
    assert db.one(
        "SELECT count(*) FROM data_drift_reports r JOIN deployments d ON d.id = r.deployment_id "
        "WHERE d.environment = 'production'"
    ) == len(PASSING)
    assert db.one("SELECT count(*) FROM alerts WHERE alert_type = 'data_drift' AND status <> 'resolved'") == len(
        PASSING
    )
    assert_rollups_exact(db)


def assert_rollups_exact(db: Db) -> None:
    """Every hourly rollup of an aggregated organization counts each raw point once."""
    wrong = db.all("""
        SELECT r.deployment_id, r.metric_name, r.bucket_start, r.sample_count, count(m.id) AS raw
        FROM model_monitoring_rollups r
        JOIN model_monitoring m ON m.deployment_id = r.deployment_id AND m.metric_name = r.metric_name
         AND date_trunc('hour', m.recorded_at, 'UTC') = r.bucket_start
        WHERE r.granularity = 'hour'
          AND NOT EXISTS (SELECT 1 FROM model_monitoring_invalidations i WHERE i.organization_id = r.organization_id)
        GROUP BY 1, 2, 3, 4 HAVING r.sample_count <> count(m.id)
    """)
    assert wrong == []


def test_thirty_runs_on_three_workers_then_a_worker_killed_mid_run(stack, receiver):
    api, db = stack["api"], stack["db"]
    subscribe(db, seed(db), receiver)
    make_keys(db)
    runs = the_thirty_runs()
    ids = [submit(api, name, params) for name, params in runs]
    states = wait_terminal(api, ids)

    by_kind: dict[str, list[str]] = {}
    for (name, params), run_id in zip(runs, ids, strict=True):
        rejected = (
            name.startswith("promote") and params["organization"] in REJECTED and params["to_stage"] == "production"
        )
        kind = "rejected" if rejected else name.split("/")[0]
        by_kind.setdefault(kind, []).append(states[run_id])
    assert set(by_kind["promote-model"]) == {"COMPLETED"}, by_kind
    assert set(by_kind["rejected"]) == {"FAILED"}, by_kind
    assert set(by_kind["detect-drift"]) == {"COMPLETED"}, by_kind
    # concurrency_limit 1 + CANCEL_NEW: an aggregation run that finds another running is cancelled, never queued
    assert set(by_kind["aggregate-metrics"]) <= {"COMPLETED", "CANCELLED"}, by_kind
    assert "COMPLETED" in by_kind["aggregate-metrics"]
    assert set(by_kind["dispatch-notifications"]) == {"COMPLETED"}, by_kind
    # what the next scheduled runs do: aggregate what cancelled runs left pending, deliver what was emitted
    # after the dispatchers above had looked
    finish_aggregation(api, db, also=((DISPATCH, {}),))
    assert_nothing_done_twice(db)
    assert_delivered_once(db, receiver)

    killed_mid_run_loses_nothing(stack)


def finish_aggregation(api: str, db: Db, also: tuple[tuple[str, dict], ...] = ()) -> None:
    """What the next scheduled run does: aggregate whatever cancelled runs left pending (`also`: other runs
    submitted with it, which must complete too)."""
    runs = [("aggregate-metrics/every-5-minutes", {}), *also]
    states = wait_terminal(api, [submit(api, name, params) for name, params in runs])
    assert set(states.values()) == {"COMPLETED"}, states
    assert db.one("SELECT count(*) FROM model_monitoring_invalidations") == 0


def assert_delivered_once(db: Db, rx: Receiver) -> None:
    """Every event the runs emitted went to its organization's channel exactly once: one `delivered` row per
    (event, channel), and one signed message per row at the receiver (no duplicate, no loss)."""
    events = db.all(
        "SELECT e.id, e.event_type, e.dispatched_at, o.slug FROM notification_events e "
        "JOIN organizations o ON o.id = e.organization_id WHERE e.event_type <> 'test.event'"
    )
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["event_type"]] = kinds.get(e["event_type"], 0) + 1
    # a promotion per stage change (the repeats emitted nothing), a drift alert per production deployment
    assert kinds == {"model_version.promoted": len(PASSING) + len(TENANTS), "data_drift.detected": len(PASSING)}
    assert all(e["dispatched_at"] is not None for e in events)
    rows = db.all(
        "SELECT d.id, d.event_id, d.channel_id, d.status, c.name FROM notification_deliveries d "
        "JOIN notification_channels c ON c.id = d.channel_id WHERE d.event_id = ANY(:e)",
        e=[e["id"] for e in events],
    )
    assert {r["status"] for r in rows} == {"delivered"}
    assert len({(r["event_id"], r["channel_id"]) for r in rows}) == len(rows) == len(events)
    slug_of = {e["id"]: e["slug"] for e in events}
    assert all(r["name"] == f"{slug_of[r['event_id']]}-ops" for r in rows)  # each to its own tenant's channel
    # the receiver: every message answered once, signed, on its tenant's path, one per delivered row
    ids = [a.msg_id for a in rx.arrivals]
    assert len(ids) == len(set(ids)) == len(rows), sorted(ids)
    assert set(ids) == {str(r["id"]) for r in rows}
    assert all(a.verified is True and 200 <= a.status < 300 for a in rx.arrivals)
    path_of = {str(r["id"]): f"/{r['name']}" for r in rows}
    assert all(a.path == path_of[a.msg_id] for a in rx.arrivals)


def killed_mid_run_loses_nothing(stack: dict) -> None:
    """A run holding claimed invalidations is SIGKILLed with its worker (the machine died); its transaction
    rolls back, the claims reappear, and once the run is marked Crashed the next run finishes the work."""
    api, db = stack["api"], stack["db"]
    org = db.one("SELECT id FROM organizations WHERE slug = 't0'")
    db.run(
        "INSERT INTO model_monitoring (deployment_id, metric_name, value, recorded_at) "
        "SELECT d.id, 'latency_p95_ms', 99, CAST(:t0 AS timestamptz) + interval '1 hour' + g * interval '1 s' "
        "FROM deployments d, generate_series(1, 300) g WHERE d.organization_id = :o",
        o=org,
        t0=T0,
    )
    pending = db.one("SELECT count(*) FROM model_monitoring_invalidations WHERE organization_id = :o", o=org)
    assert pending > 0
    engine = create_engine(db.engine.url, poolclass=pool.NullPool)
    blocker = engine.connect()
    victim = None
    try:
        # another writer holds t0's rollup rows, so the run stops inside its transaction, claims taken
        blocker.execute(
            text("SELECT id FROM model_monitoring_rollups WHERE organization_id = :o FOR UPDATE"), {"o": org}
        )
        victim = submit(api, "aggregate-metrics/every-5-minutes", {"organization": "t0"})
        backend = wait_for_blocked_backend(db)
        flow_process = process_of(victim)
        worker = next(w for w in stack["workers"] if w.pid in {p.pid for p in flow_process.parents()})
        os.killpg(worker.pid, signal.SIGKILL)
        os.killpg(os.getpgid(flow_process.pid), signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        blocker.rollback()
        blocker.close()
        engine.dispose()
    wait_until(lambda: db.one("SELECT count(*) FROM pg_stat_activity WHERE pid = :p", p=backend) == 0)
    # nothing lost: the killed run's claims came back with its rollback
    assert db.one("SELECT count(*) FROM model_monitoring_invalidations WHERE organization_id = :o", o=org) == pending
    assert run_state(api, victim) == "RUNNING"  # a zombie until something notices it stopped
    mark_crashed(api, victim)  # what the zombie-flow automation (README) does after missed heartbeats
    finish_aggregation(api, db)  # the other two workers take the next run
    assert_rollups_exact(db)
    assert (
        db.one(
            "SELECT sample_count FROM model_monitoring_rollups r JOIN deployments d ON d.id = r.deployment_id "
            "WHERE d.organization_id = :o AND d.environment = 'production' AND r.metric_name = 'latency_p95_ms' "
            "AND r.granularity = 'hour' AND r.bucket_start = CAST(:t0 AS timestamptz) + interval '1 hour'",
            o=org,
            t0=T0,
        )
        == 100 + 300  # points 100..199 of the first load, then the 300 the killed run left pending
    )


def wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def wait_for_blocked_backend(db: Db) -> int:
    found: list[int] = []

    def blocked() -> bool:
        found[:] = [
            r["pid"]
            for r in db.all(
                "SELECT pid FROM pg_stat_activity WHERE usename = 'mlops_login' AND wait_event_type = 'Lock'"
            )
        ]
        return bool(found)

    wait_until(blocked, timeout=90)
    return found[0]


def process_of(flow_run_id: uuid.UUID) -> psutil.Process:
    """The flow-run process a worker started (its environment names the run)."""
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFECT__FLOW_RUN_ID") == str(flow_run_id):
                return proc
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    raise AssertionError(f"no process runs flow run {flow_run_id}")


def run_state(api: str, flow_run_id: uuid.UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state_type.value


def mark_crashed(api: str, flow_run_id: uuid.UUID) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Crashed(message="no heartbeat: its worker died"), force=True)
