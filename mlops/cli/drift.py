"""`mlops drift`: run detection, or compare two files by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import InvalidInput, MlopsError
from mlops.cli.common import (
    AsOption,
    JsonOption,
    OrgOption,
    command_app,
    echo_json,
    has_identity,
    parse_datetime,
    parse_pairs,
    read_json,
)

app = command_app(help="Data drift: run detection, or compare two files by hand.", invoke_without_command=True)


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
    deployment. Exit 1 when a deployment could not be analysed."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.drift_detection import detect_drift
    from flows.runtime import run_flow

    if not has_identity(as_email):
        raise InvalidInput("no identity: set MLOPS_API_KEY, or pass --as EMAIL (MLOPS_AS); schedules run as the system")
    summary = run_flow(
        detect_drift,
        organization=organization,
        deployment=deployment,
        environment=environment,
        start=parse_datetime(start, "--start") if start else None,
        end=parse_datetime(end, "--end") if end else None,
        actor=as_email,
    )
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
    from tasks.datasets import read_uri
    from tasks.drift import dataset_drift

    types = read_json(column_types, "--column-types") if column_types else None
    if types is not None and not isinstance(types, dict):
        raise InvalidInput("--column-types must be a JSON object of column name to 'num' or 'cat'")
    methods = parse_pairs(method or [], "--method", str)
    thresholds = parse_pairs(threshold or [], "--threshold", float)
    reference_frame = read_uri(reference)
    current_frame = read_uri(current)
    result = dataset_drift(
        reference_frame, current_frame, column_types=types, methods=methods, thresholds=thresholds,
        drift_threshold=drift_threshold,
    )  # fmt: skip
    if html:
        from tasks.drift_report import render_drift_html

        Path(html).write_text(render_drift_html(result, reference_frame, current_frame, title="Data drift",
                                                subtitle=f"{reference} vs {current}"))  # fmt: skip
    if as_json:
        echo_json(result.to_json())
    else:
        for c in result.columns:
            verdict = "error" if c.error else ("DRIFT" if c.drifted else "ok")
            detail = c.error or f"{c.method:<13} score {c.score:.6g} threshold {c.threshold:g}"
            typer.echo(f"{verdict:<5}  {c.column:<24} {c.column_type:<3}  {detail}")
        typer.echo(
            f"{result.number_of_drifted_columns} of {result.number_of_columns} columns drifted "
            f"({result.drift_share:.0%}); dataset drift: {'yes' if result.dataset_drift else 'no'} "
            f"(threshold {result.drift_threshold:.0%})"
        )
    if result.dataset_drift:
        raise typer.Exit(1)
