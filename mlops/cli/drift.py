"""`mlops drift`: run detection, or compare two files by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from core.errors import InvalidInput, MlopsError, PartialFailure
from mlops.cli.common import (
    AsOption,
    JsonOption,
    OrgOption,
    command_app,
    echo_json,
    has_identity,
    parse_datetime,
    parse_deployment_ref,
    parse_pairs,
    principal_for,
    print_rows,
    read_json,
)

app = command_app(
    help="Data drift: run detection, list a deployment's reports, or compare two files by hand.",
    invoke_without_command=True,
)


@app.callback()
def drift(
    ctx: typer.Context,
    organization: OrgOption = None,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only this deployment: ORG/PROJECT/DEPLOYMENT.")
    ] = None,
    environment: Annotated[str | None, typer.Option("--env", help="Environment of --deployment.")] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Window start, ISO 8601 (default: last interval).")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="Window end, ISO 8601.")] = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run drift detection (flow detect-drift) for every configured deployment, one organization or one
    deployment. Exit 1 when a deployment drifted or could not be analysed (like `drift compare`: drift is
    exit 1, so a CI step can stop on it), 0 when none drifted."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.drift_detection import detect_drift
    from flows.runtime import run_flow

    if not has_identity(as_email):
        raise InvalidInput("no identity: set MLOPS_API_KEY, or pass --as EMAIL (MLOPS_AS); schedules run as the system")
    try:
        summary = run_flow(
            detect_drift,
            organization=organization,
            deployment=deployment,
            environment=environment,
            start=parse_datetime(start, "--start") if start else None,
            end=parse_datetime(end, "--end") if end else None,
            actor=as_email,
            on_demand=True,  # as the caller (MLOPS_API_KEY or --as), never as the scheduler
        )
    except PartialFailure as failure:  # some deployment failed: show every outcome, then exit 1
        summary = failure.summary
        if not summary:
            raise
    if as_json:
        echo_json(summary)
    else:
        for note in summary["skipped_organizations"]:
            typer.echo(note)
        for outcome in summary["outcomes"]:
            typer.echo(f"{outcome['deployment']}: {outcome['status']}: {outcome['message']}")
            if outcome.get("report_uri"):
                typer.echo(f"  report: {outcome['report_uri']}")
        if not summary["outcomes"]:
            typer.echo("no active deployment has drift monitoring configured")
    if summary["failed"]:
        raise MlopsError(f"{summary['failed']} deployment(s) could not be analysed")
    if summary["drift_detected"]:
        raise typer.Exit(1)


@app.command("compare")
def drift_compare(
    reference: Annotated[str, typer.Argument(help="Reference dataset: a Parquet/CSV path or artifact-store URI.")],
    current: Annotated[str, typer.Argument(help="Current dataset: a Parquet/CSV path or artifact-store URI.")],
    column_types: Annotated[
        str | None, typer.Option("--column-types", help="JSON file mapping column -> num or cat.")
    ] = None,
    method: Annotated[list[str] | None, typer.Option("--method", help="COL=NAME (ks, psi, wasserstein, ...).")] = None,
    threshold: Annotated[list[str] | None, typer.Option("--threshold", help="COL=VALUE, per column.")] = None,
    drift_threshold: Annotated[
        float, typer.Option("--drift-threshold", help="Share of drifted columns that means dataset drift.")
    ] = 0.1,
    html: Annotated[str | None, typer.Option("--html", help="Also write the HTML report to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare two datasets column by column (Evidently's default tests) without touching the database.
    Exit 0 without dataset drift, 1 with it."""
    from tasks.drift.datasets import read_uri
    from tasks.drift.verdicts import dataset_drift

    types = read_json(column_types, "--column-types") if column_types else None
    methods = parse_pairs(method or [], "--method", str)
    thresholds = parse_pairs(threshold or [], "--threshold", float)
    for column, value in thresholds.items():
        # a threshold of 0 or less would make the column never (p-value tests) or always drift: not a setting
        if not (math.isfinite(value) and value > 0):
            raise InvalidInput(f"--threshold {column}: must be a finite number above 0, got {value:g}")
    html_path = Path(html) if html else None
    if html_path is not None and not html_path.parent.is_dir():
        raise InvalidInput(f"--html: directory {html_path.parent} does not exist")
    if html_path is not None and html_path.is_dir():
        raise InvalidInput(f"--html: {html_path} is a directory")
    reference_frame = read_uri(reference)
    current_frame = read_uri(current)
    for name, frame in (("reference", reference_frame), ("current", current_frame)):
        if len(frame) == 0:
            raise InvalidInput(f"the {name} dataset has no rows: nothing to compare")
    result = dataset_drift(
        reference_frame,
        current_frame,
        column_types=types,
        methods=methods,
        thresholds=thresholds,
        drift_threshold=drift_threshold,
    )
    if html_path is not None:
        from tasks.drift.report import render_drift_html

        page = render_drift_html(
            result, reference_frame, current_frame, title="Data drift", subtitle=f"{reference} vs {current}"
        )
        try:
            html_path.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--html: cannot write {html_path}: {exc.strerror}") from None
    if as_json:
        echo_json(result.to_json())
    else:
        for c in result.columns:
            verdict = "error" if c.error else ("DRIFT" if c.drifted else "ok")
            detail = c.error or f"{c.method:<13} score {c.score:.6g} threshold {c.threshold:g}"
            typer.echo(f"{verdict:<5}  {c.column:<24} {c.column_type:<3}  {detail}")
        typer.echo(result.summary())
    if result.dataset_drift:
        raise typer.Exit(1)


@app.command("reports")
def drift_reports(
    deployment_ref: Annotated[str, typer.Argument(metavar="ORG/PROJECT/DEPLOYMENT", help="The deployment.")],
    environment: Annotated[str, typer.Option("--env", help="development, staging or production.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Newest reports to show.")] = 20,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """A deployment's drift reports, newest window first (what `mlops drift` and the hourly schedule wrote)."""
    from services.listings import read_drift_reports

    org, project, deployment = parse_deployment_ref(deployment_ref, environment)
    rows = read_drift_reports(
        principal_for(org, as_email), project=project, deployment=deployment, environment=environment, limit=limit
    )

    def line(r: dict) -> str:
        window = f"{r['period_start']:%Y-%m-%d %H:%M} - {r['period_end']:%Y-%m-%d %H:%M}"
        drifted = f"{r['drifted'] or 0}/{r['analysed'] or 0}"
        return (
            f"{window:<33} {'yes' if r['is_drift_detected'] else 'no':<6} {r['drift_score']:>6.2f} "
            f"{drifted:>8} {r['failed'] or 0:>6}  {r['report_uri'] or ''}"
        )

    print_rows(
        rows,
        as_json,
        line,
        header=f"{'window (UTC)':<33} {'drift':<6} {'share':>6} {'drifted':>8} {'failed':>6}  report",
        empty=f"no drift report for {deployment_ref} ({environment}) yet",
    )
