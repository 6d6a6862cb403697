"""`mlops demo` steps: a serving platform stub drives fraud-api-prod, so the promotion of 1.1.0 rolls it out in
steps; then a forced promotion of 1.2.0 whose rollout fails reverts the deployment and the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from core.errors import MlopsError
from db.models import Deployment
from db.session import session_scope
from demo.seed import ADMIN, MODEL, ORG, PROJECT
from demo.serving_stub import ServingStub
from flows.promotion import promote_model
from flows.runtime import run_flow
from services.auth import resolve_principal
from services.history import model_history
from tasks.rollout.plan import ChangeRequest
from tasks.rollout.service import deployment_history

Echo = Callable[[str], None]
DEPLOYMENT = "fraud-api-prod"
SERVING = {
    "backend": "http",
    "steps": [10, 50, 100],
    "bake_seconds": 1,
    "health_timeout_seconds": 3,
    "poll_interval_seconds": 0.1,
    "max_anomalies": 3,
}


def start_demo_platform(echo: Echo) -> ServingStub:
    """Start the stub and point fraud-api-prod's `serving` block at it (its port is new on every run)."""
    stub = ServingStub().start()
    principal = resolve_principal(organization=ORG, as_email=ADMIN)
    with session_scope(principal.organization_id) as session:
        current = session.query(Deployment).filter(Deployment.name == DEPLOYMENT).one()
        config = {
            **(current.deployment_config or {}),
            "serving": {**SERVING, "control_url": stub.control_url(DEPLOYMENT)},
        }
        session.execute(
            update(Deployment)
            .where(Deployment.id == current.id)
            .values(deployment_config=config, endpoint_url=stub.endpoint_url(DEPLOYMENT))
        )
    echo(f"serving platform stub on {stub.url}: {DEPLOYMENT} is rolled out through {stub.control_url(DEPLOYMENT)}")
    return stub


def _history(principal) -> list[dict[str, Any]]:
    request = ChangeRequest(organization=ORG, project=PROJECT, deployment=DEPLOYMENT, environment="production")
    return deployment_history(principal, request)


def _show_history(echo: Echo, rows: list[dict[str, Any]], limit: int = 4) -> None:
    for r in reversed(rows[:limit]):
        steps = " -> ".join(f"{s['percent']}%{'' if s['ok'] else ' FAILED'}" for s in r["details"].get("results", []))
        error = f"  ({r['error_message'][:90]}…)" if r["error_message"] else ""
        echo(f"   {r['action']:<9} {r['version']:<7} {r['status']:<10} {steps}{error}")


def run_rollout_demo(echo: Echo, stub: ServingStub) -> list[tuple[str, str]]:
    """Show the rollout of step 4, then force 1.2.0 into production and watch it revert; returns the summary
    table's `rolled out` and `rolled back` lines."""
    principal = resolve_principal(organization=ORG, as_email=ADMIN)
    rows = _history(principal)
    echo(f"{DEPLOYMENT} history (the promotion of 1.1.0 in step 4 rolled it out through the stub):")
    _show_history(echo, rows)
    if any(r["version"] == "1.2.0" and r["action"] == "update" and r["status"] == "failed" for r in rows):
        echo("unchanged: the failed forced rollout of 1.2.0 was shown on an earlier run")
        return [("rolled out", "unchanged"), ("rolled back", "unchanged")]
    echo("forcing 1.2.0 (rejected by its gates in step 5) into production; the platform never reports it ready:")
    stub.unready = {"1.2.0"}
    try:
        run_flow(
            promote_model,
            orchestrate=True,
            organization=ORG,
            project=PROJECT,
            model=MODEL,
            version="1.2.0",
            to_stage="production",
            force=True,
            reason="demo: ship despite the gates",
            actor=ADMIN,
        )
        echo("   unexpected: the rollout succeeded")
    except MlopsError as failed:
        echo(f"   exit code {failed.exit_code} from `mlops promote`: {failed}")
    _show_history(echo, _history(principal), limit=2)
    stages = {r["version"]: r["to_stage"] for r in model_history(principal, project=PROJECT, model=MODEL)}
    echo(f"   registry now: 1.1.0 {stages.get('1.1.0')}, 1.2.0 {stages.get('1.2.0')} (each move in the stage history)")
    splits = [" + ".join(f"{e['model_version']} {e['percent']}%" for e in t) for t in stub.puts(DEPLOYMENT)]
    echo(f"   the platform was asked for: {' | '.join(splits)}")
    rows = _history(principal)
    completed = [r for r in rows if r["action"] == "update" and r["status"] == "completed"]
    steps = " -> ".join(f"{s['percent']}%" for s in completed[0]["details"].get("results", [])) if completed else ""
    rolled_out = f"{completed[0]['version']} to {DEPLOYMENT} ({steps})" if completed else "none"
    rolled_back = f"1.2.0 on {DEPLOYMENT} back to 1.1.0 (never healthy); registry restored"
    if not any(r["action"] == "rollback" and r["status"] == "completed" for r in rows):
        rolled_back = "none (unexpected)"
    return [("rolled out", rolled_out), ("rolled back", rolled_back)]
