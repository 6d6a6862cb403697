"""`mlops demo`: migrate, seed the demo organization, then run every flow once and say what each did."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.errors import GateRejected
from core.settings import mlops_home
from demo import sample_data
from demo.metrics import run_metrics_demo
from demo.notifications import run_notifications_demo
from demo.retention import run_retention_demo
from demo.rollout import run_rollout_demo, start_demo_platform
from demo.seed import ADMIN, DEVELOPER, MODEL, ORG, PROJECT, seed_demo
from flows.drift_detection import detect_drift
from flows.promotion import promote_model
from flows.registration import register_model_version, upload_local_artifact
from flows.runtime import run_flow
from services.storage import open_store
from tasks.drift.datasets import partition_prefix
from tasks.drift.rules import drift_window

Echo = Callable[[str], None]
LOGGED_HOURS_AHEAD = 3  # inputs logged past the demo's window, for the hourly deployment's next runs


def run_demo(echo: Echo) -> None:
    """Every step is idempotent: a second demo changes nothing and says so."""
    from db import migrate

    echo("== 1. migrate")
    migrate.upgrade()
    echo(f"database at revision {migrate.current_revision()}")

    echo("\n== 2. seed the demo organization")
    echo(seed_demo().describe())

    echo("\n== 3. register-model-version: CI registers what it trained")
    artifact = mlops_home() / "demo" / "model-1.3.0.bin"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(sample_data.model_artifact("1.3.0"))
    request = dict(
        organization=ORG,
        project=PROJECT,
        model=MODEL,
        version="1.3.0",
        metrics={
            "accuracy": 0.961,
            "precision": 0.86,
            "recall": 0.8,
            "f1": 0.829,
            "auc": 0.974,
            "latency_p95_ms": 36.0,
        },
        description="Retrained on October transactions.",
    )
    uploaded = upload_local_artifact(artifact, actor=DEVELOPER, **request)  # as `mlops register` does
    registered = run_flow(register_model_version, orchestrate=True, artifact=uploaded, actor=DEVELOPER, **request)
    table: list[tuple[str, str]] = [("registered", f"{MODEL} 1.3.0 ({registered['status']})")]
    echo(
        f"{MODEL} 1.3.0: {registered['status']} -> {registered['artifact_uri']} ({registered['size_bytes']} bytes, "
        f"sha256 {registered['sha256'][:12]}…)"
    )

    platform = start_demo_platform(echo)
    echo("\n== 4. promote-model: 1.1.0 staging -> production, through its gates, rolled out in steps")
    start, end = staging_drift_evidence(echo)
    promoted = [_promote(echo, "1.1.0", "production", ADMIN, reason="auc +0.009 over 1.0.0 after 3 days in staging")]

    echo("\n== 5. promote-model: a promotion the gates reject")
    promoted.append(_promote(echo, "1.2.0", "staging", DEVELOPER, reason="candidate for the next release"))
    promoted.append(_promote(echo, "1.2.0", "production", ADMIN, reason="try to ship it today"))
    table.append(("promoted", "; ".join(promoted)))

    echo("\n== 6. detect-drift: the last hour of fraud-api-prod's logged inputs against its reference")
    summary = run_flow(
        detect_drift,
        orchestrate=True,
        deployment=f"{ORG}/{PROJECT}/fraud-api-prod",
        environment="production",
        start=start,
        end=end,
    )
    for outcome in summary["outcomes"]:
        echo(f"{outcome['deployment']}: {outcome['message']}")
        for column in outcome["columns"]:
            mark = "DRIFT" if column["drifted"] else "ok   "
            echo(
                f"   {mark} {column['column']:<22} {column['method']:<13} score {column['score']:.4g} "
                f"(threshold {column['threshold']:g})"
            )
        if outcome.get("report_uri"):
            echo(f"   HTML report: {outcome['report_uri']}")
        if outcome.get("alert_id") and outcome.get("change") == "new":
            echo(f"   data_drift alert {outcome['alert_id']} is open; an 'alert' event waits in the outbox")
        elif outcome.get("alert_id"):
            echo(f"   data_drift alert {outcome['alert_id']} is open; its event was emitted once, by the first run")
    table.append(("drifted features", "; ".join(_drifted(o) for o in summary["outcomes"])))
    echo("\n== 7. aggregate-metrics: hourly and daily rollups of the monitoring points, metric alerts")
    table.append(("rollups written", run_metrics_demo(echo)))
    echo("\n== 8. enforce-retention: old audit rows archived to the artifact store, then deleted")
    table.append(("rows archived", run_retention_demo(echo)))
    echo("\n== 9. rollout-deployment: a forced promotion whose rollout fails reverts deployment and registry")
    table += run_rollout_demo(echo, platform)
    platform.stop()
    echo("\n== 10. dispatch-notifications: the outbox's events to a local webhook receiver (Standard Webhooks)")
    table.append(("notifications delivered", run_notifications_demo(echo)))
    echo("\n== Summary")
    width = max(len(what) for what, _ in table)
    for what, result in table:
        echo(f"{what:<{width}}  {result}")
    echo("\nDone. Run it again: every step is idempotent (a rerun says `unchanged`).")


def _drifted(outcome: dict) -> str:
    """`fraud-api-prod: amount, merchant_category (2 of 8 columns)` for the summary table."""
    name = outcome["deployment"].split("/")[-1].split(" ")[0]
    if outcome["status"] not in ("reported", "incomplete"):
        return f"{name}: {outcome['status']}"
    drifted = [c["column"] for c in outcome["columns"] if c["drifted"]]
    change = "" if outcome["change"] == "new" else f", {outcome['change']}"
    return f"{name}: {', '.join(drifted) or 'none'} ({len(drifted)} of {len(outcome['columns'])} columns{change})"


def _promote(echo: Echo, version: str, stage: str, actor: str, *, reason: str) -> str:
    """Run one promotion as `mlops promote` does, print its gates; returns a line for the summary table."""
    try:
        result = run_flow(
            promote_model,
            orchestrate=True,
            organization=ORG,
            project=PROJECT,
            model=MODEL,
            version=version,
            to_stage=stage,
            reason=reason,
            actor=actor,
        )
    except GateRejected as rejected:
        echo(f"{version} -> {stage}: REJECTED (exit code 1 from `mlops promote`)")
        for gate in rejected.gates:
            echo(f"   {'pass' if gate['passed'] else 'FAIL'}  {gate['gate']:<20} {gate['detail']}")
        failed = sum(1 for gate in rejected.gates if not gate["passed"])
        return f"{version} -> {stage} rejected ({failed} of {len(rejected.gates)} gates failed)"
    if result["status"] == "noop":
        echo(f"unchanged: {version} is already in {stage}")
        return f"{version} in {stage} (unchanged)"
    echo(f"{version}: {result['from_stage']} -> {result['to_stage']} ({result['status']} by {actor})")
    for gate in result["gates"]:
        echo(f"   {'pass' if gate['passed'] else 'FAIL'}  {gate['gate']:<20} {gate['detail']}")
    if result["archived_versions"]:
        echo(f"   archived the previous production version {', '.join(result['archived_versions'])}")
    if result["to_stage"] == "production":
        echo(f"   rollout: {result['rollout']}")
    return f"{version} {result['from_stage']} -> {result['to_stage']}"


def staging_drift_evidence(echo: Echo) -> tuple[datetime, datetime]:
    """The drift gate's evidence for a production promotion: a fresh report on the staging deployment; returns
    the window (the production deployment's inputs are logged for it too)."""
    start, end = drift_window(datetime.now(UTC), 60)
    _log_inputs(start, end)
    staging = run_flow(
        detect_drift,
        orchestrate=True,
        deployment=f"{ORG}/{PROJECT}/fraud-api-staging",
        environment="staging",
        start=start,
        end=end,
    )
    for outcome in staging["outcomes"]:
        echo(f"{outcome['deployment']}: {outcome['message']}")
    return start, end


def _log_inputs(start: datetime, end: datetime) -> None:
    """What the serving layer would have logged over the window and the next hours, one file per hour: in
    production transaction amounts and merchants drifted, in staging not. The hours ahead are there so that the
    hourly `detect-drift` deployment (`make ui`, `mlops serve`) finds inputs on its next scheduled runs."""
    store = open_store()
    for hour in range(int((end - start) / timedelta(hours=1)) + LOGGED_HOURS_AHEAD):
        hour_start = start + timedelta(hours=hour)
        for deployment, drifted in (("fraud-api-prod", True), ("fraud-api-staging", False)):
            key = (
                partition_prefix(f"inference-logs/{ORG}/{PROJECT}/{deployment}", hour_start.date())
                + f"demo-{hour_start:%H%M}.parquet"
            )
            if store.exists(key):
                continue
            seed = 11 if drifted else 12  # the same sample every hour: the demo prints the same scores each time
            frame = sample_data.logged_inputs(
                hour_start, hour_start + timedelta(hours=1), per_hour=1500, seed=seed, drifted=drifted
            )
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            store.put(key, buffer.getvalue())
