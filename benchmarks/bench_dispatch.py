"""Notification dispatch throughput: 4 dispatchers vs a bare async httpx loop, to one local uvicorn receiver.

`BENCH_DISPATCH_N` events (default 20,000) of one organization, one webhook channel (signed, Standard Webhooks)
and one rule, fanned out into as many pending deliveries; then, in one run against the same receiver (an ASGI app
on uvicorn in its own process, counting every webhook-id it answered 2xx):
(a) a bare loop: `httpx.AsyncClient` posting the same payloads, retrying a failed post at once, with 8 and 32
    in flight (httpx's async pool gets slower with many connections: the fastest counts);
(b) ours: 4 dispatcher processes in parallel running flow `dispatch-notifications` until nothing is due (8 sends
    in flight each);
each with every response succeeding, and with 20 % of responses failing (HTTP 503, retried with backoff).
Targets: (b) at least half the throughput of (a); zero duplicates and zero losses (every delivery answered 2xx
exactly once, every row `delivered`).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import print_table, write_results

N = int(os.environ.get("BENCH_DISPATCH_N", "20000"))
DISPATCHERS = 4
BARE_CONCURRENCY = (8, 32)  # httpx's async pool slows down with many connections: the best one counts
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# --- the receiver (its own process) ------------------------------------------------------------------------


def receiver_app(fail_share: float):
    ok: dict[str, int] = {}
    counts = {"failed": 0, "total": 0}
    rng = random.Random(7)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = json.dumps({"ok": ok, **counts}).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        msg_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        counts["total"] += 1
        status = 503 if rng.random() < fail_share else 200
        if status == 200:
            ok[msg_id] = ok.get(msg_id, 0) + 1
        else:
            counts["failed"] += 1
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    return app


def serve(port: int, fail_share: float) -> None:
    import uvicorn

    uvicorn.run(receiver_app(fail_share), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_receiver(fail_share: float) -> tuple[subprocess.Popen, str]:
    import httpx

    from tests.fixtures.peers import free_port

    port = free_port()
    code = f"from benchmarks.bench_dispatch import serve; serve({port}, {fail_share})"
    proc = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/stats", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


def stats(url: str) -> dict:
    import httpx

    return httpx.get(url + "/stats", timeout=30).json()


# --- the database --------------------------------------------------------------------------------------------


def _database() -> str:
    from sqlalchemy.engine import make_url

    from core.settings import normalize_database_url
    from db import migrate
    from db.embedded import server_url

    given = os.environ.get("DATABASE_URL")
    if given:
        admin = make_url(normalize_database_url(given)).set(database="postgres")
    else:
        uri = server_url(Path(tempfile.mkdtemp(prefix="bench-dispatch-")) / "pgdata", cleanup_mode="delete")
        admin = make_url(uri).set(drivername="postgresql+psycopg")
    import psycopg

    libpq = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_dispatch WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_dispatch")
    url = admin.set(database="bench_dispatch").render_as_string(hide_password=False)
    migrate.upgrade(url=url)
    return url


def _prepare(owner_url: str, receiver_url: str) -> None:
    """A fresh organization with a channel, a rule and N events, fanned out into N pending deliveries."""
    from sqlalchemy import create_engine, pool, text

    from services.secrets import secret_box
    from tasks.notifications.channels import seal
    from tasks.notifications.service import DispatchSettings
    from tasks.notifications.tasks import fan_out

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    config = seal("webhook", {"url": f"{receiver_url}/hook", "signing_secret": SECRET}, secret_box())
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE organizations, users CASCADE"))
        org = conn.execute(
            text(
                "INSERT INTO organizations (name, slug, billing_email) "
                "VALUES ('Bench', 'bench', 'b@bench.example') RETURNING id"
            )
        ).scalar_one()
        user = conn.execute(
            text("INSERT INTO users (email, first_name, last_name) VALUES ('a@bench.example', 'A', 'B') RETURNING id")
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO organization_memberships (organization_id, user_id, role, joined_at) "
                "VALUES (:o, :u, 'admin', now())"
            ),
            {"o": org, "u": user},
        )
        channel = conn.execute(
            text(
                "INSERT INTO notification_channels (organization_id, name, type, configuration, created_by) "
                "VALUES (:o, 'hook', 'webhook', CAST(:c AS jsonb), :u) RETURNING id"
            ),
            {"o": org, "c": json.dumps(config), "u": user},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO notification_rules (organization_id, channel_id, trigger_type, created_by) "
                "VALUES (:o, :c, 'alert', :u)"
            ),
            {"o": org, "c": channel, "u": user},
        )
        conn.execute(
            text(
                "INSERT INTO notification_events (organization_id, trigger_type, event_type, severity, payload) "
                "SELECT :o, 'alert', 'bench.event', 'high', jsonb_build_object('n', g, 'message', 'event ' || g) "
                "FROM generate_series(1, :n) g"
            ),
            {"o": org, "n": N},
        )
    engine.dispose()
    fan_out.fn((org, "bench"), DispatchSettings(group_wait_seconds=0))


SETTINGS = dict(
    batch_size=500, concurrency=8, base_seconds=0.01, cap_seconds=0.1, max_attempts=30, group_wait_seconds=0
)


def _dispatcher(start, owner_url: str) -> None:
    from sqlalchemy import create_engine, pool, text

    from db.session import dispose_engines
    from flows.notification_dispatch import dispatch_notifications
    from tasks.notifications.service import DispatchSettings

    dispose_engines()
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    start.wait()
    settings = DispatchSettings(**SETTINGS)
    while True:
        dispatch_notifications.fn(organization="bench", settings=settings)
        with engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM notification_deliveries WHERE status NOT IN ('delivered', 'dead')")
            ).scalar()
        if not left:
            return
        time.sleep(0.01)


def run_ours(owner_url: str) -> float:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_dispatcher, args=(start, owner_url)) for _ in range(DISPATCHERS)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # every child is waiting at the start line
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    return time.perf_counter() - began


def run_bare(url: str, bodies: list[bytes], concurrency: int) -> float:
    import httpx

    async def main() -> None:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits) as client:

            async def one(body: bytes) -> None:
                headers = {"content-type": "application/json", "webhook-id": str(uuid.uuid4())}
                async with gate:
                    while (await client.post(url + "/bare", content=body, headers=headers)).status_code >= 300:
                        pass

            await asyncio.gather(*(one(b) for b in bodies))

    began = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - began


def _bodies(owner_url: str) -> list[bytes]:
    """The payloads our dispatchers send for these events (signed webhook JSON), for the bare loop to post."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, pool, text

    from tasks.notifications.messages import EventView, Message, webhook_body

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, event_type, severity, payload, created_at FROM notification_events "
                "WHERE event_type = 'bench.event'"
            )
        ).all()
    engine.dispose()
    now = datetime.now(UTC)
    return [
        webhook_body(
            Message(
                uuid.uuid4(), (EventView(r.id, "alert", r.event_type, r.severity, r.payload, r.created_at, "bench"),)
            ),
            now,
        )
        for r in rows
    ]


def _check(owner_url: str, received: dict, before: dict) -> tuple[int, int]:
    """(duplicates, losses) of our run: ids answered 2xx more than once; deliveries never answered 2xx."""
    from sqlalchemy import create_engine, pool, text

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        ids = {
            str(i)
            for i in conn.execute(text("SELECT id FROM notification_deliveries WHERE status = 'delivered' ")).scalars()
        }
        total = conn.execute(text("SELECT count(*) FROM notification_deliveries")).scalar()
    engine.dispose()
    ours = {k: v - before.get(k, 0) for k, v in received["ok"].items() if v - before.get(k, 0) > 0}
    duplicates = sum(1 for k, v in ours.items() if v > 1)
    losses = (total - len(ids)) + len(ids - set(ours))
    return duplicates, losses


def main() -> None:
    from db.url import LOGIN_ROLE, MAINTENANCE_ROLE, with_role

    os.environ["MLOPS_ORCHESTRATE"] = "never"
    os.environ.setdefault("MLOPS_SECRET_KEY", "")
    if not os.environ["MLOPS_SECRET_KEY"]:
        from cryptography.fernet import Fernet

        os.environ["MLOPS_SECRET_KEY"] = Fernet.generate_key().decode()
    owner_url = _database()
    os.environ["DATABASE_URL"] = with_role(owner_url, LOGIN_ROLE)
    os.environ["MLOPS_MAINTENANCE_DATABASE_URL"] = with_role(owner_url, MAINTENANCE_ROLE)
    from db.session import dispose_engines
    from flows.notification_dispatch import dispatch_notifications  # noqa: F401 - imported once, before the forks

    rows, figures = [], {}
    for fail_share in (0.0, 0.2):
        receiver, url = start_receiver(fail_share)
        try:
            _prepare(owner_url, url)
            bodies = _bodies(owner_url)
            dispose_engines()
            bare_runs = {c: run_bare(url, bodies, c) for c in BARE_CONCURRENCY}
            bare = min(bare_runs.values())
            before = stats(url)["ok"]
            ours = run_ours(owner_url)
            received = stats(url)
            duplicates, losses = _check(owner_url, received, before)
        finally:
            receiver.terminate()
            receiver.wait()
        label = f"{int(fail_share * 100)} % failing"
        figures[label] = {
            "deliveries": N,
            "bare_seconds": bare,
            "ours_seconds": ours,
            "bare_per_second": N / bare,
            "ours_per_second": N / ours,
            "ratio": bare / ours,
            "duplicates": duplicates,
            "losses": losses,
            "bare_seconds_by_concurrency": bare_runs,
        }
        rows.append([label, N, f"{N / bare:,.0f}/s", f"{N / ours:,.0f}/s", f"{bare / ours:.2f}", duplicates, losses])
    print_table(
        f"Notification dispatch: {N:,} deliveries, {DISPATCHERS} dispatchers vs a bare async httpx loop",
        ["responses", "deliveries", "bare loop", "ours", "ours/bare", "duplicates", "losses"],
        rows,
    )
    write_results("bench_dispatch", {"deliveries": N, "dispatchers": DISPATCHERS, "runs": figures})


if __name__ == "__main__":
    main()
