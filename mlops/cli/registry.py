"""`mlops register`, `mlops promote` and `mlops history`: the model registry."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from core.validation import check_text
from mlops.cli.common import (
    AsOption,
    JsonOption,
    echo_json,
    parse_datetime,
    principal_for,
    print_rows,
    read_json,
    read_text,
)


def register(
    model_ref: Annotated[str, typer.Argument(metavar="ORG/PROJECT/MODEL")],
    version: Annotated[str, typer.Argument(help="Semantic version, e.g. 1.3.0.")],
    artifact: Annotated[
        str, typer.Option("--artifact", help="Trained artifact: a local file (uploaded first) or a store URI.")
    ],
    metrics: Annotated[str | None, typer.Option("--metrics", help="JSON file of performance metrics.")] = None,
    schema: Annotated[str | None, typer.Option("--schema", help="JSON file of the input/output schema.")] = None,
    requirements: Annotated[str | None, typer.Option("--requirements", help="pip freeze output file.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    model_type: Annotated[str | None, typer.Option("--model-type", help="For a new model.")] = None,
    framework: Annotated[str | None, typer.Option("--framework", help="For a new model.")] = None,
    task_type: Annotated[str | None, typer.Option("--task-type", help="For a new model.")] = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a trained version in development (runs flow register-model-version)."""
    from flows.registration import register_model_version, upload_local_artifact
    from flows.runtime import run_flow
    from tasks.registry.rules import parse_model_ref

    org, project, model = parse_model_ref(model_ref)
    # lengths of the columns these land in (models.name 255, model_versions.version 50, the model's kind 100):
    # checked before the flow uploads the artifact, so a refusal leaves no orphan object in the store
    check_text(model, "model name", max_length=255)
    check_text(version, "version", max_length=50)
    for option, value in (("--model-type", model_type), ("--framework", framework), ("--task-type", task_type)):
        if value is not None:
            check_text(value, option, max_length=100)
    if description is not None:
        check_text(description, "--description", max_length=100_000, required=False, multiline=True)
    params = dict(
        organization=org,
        project=project,
        model=model,
        version=version,
        metrics=read_json(metrics, "--metrics") if metrics else {},
        model_schema=read_json(schema, "--schema") if schema else {},
        requirements=read_text(requirements, "--requirements") if requirements else None,
        description=description,
        model_type=model_type,
        framework=framework,
        task_type=task_type,
    )
    if "://" not in artifact:  # a local file on this machine: upload it here; the flow run reads only the store
        artifact = upload_local_artifact(artifact, actor=as_email, **params)
    result = run_flow(register_model_version, artifact=artifact, actor=as_email, **params)
    if as_json:
        echo_json(result)
        return
    typer.echo(
        f"{model} {version}: {result['status']} ({result['artifact_uri']}, {result['size_bytes']} bytes, "
        f"sha256 {result['sha256'][:12]}…)"
    )


def promote(
    model_ref: Annotated[str, typer.Argument(metavar="ORG/PROJECT/MODEL")],
    version: Annotated[str, typer.Argument(help="The version to move.")],
    to_stage: Annotated[str, typer.Option("--to", help="staging, production or archived.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why; required with --force.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate the gates; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Skip failing gates (admins, with --reason).")] = False,
    no_rollout: Annotated[bool, typer.Option("--no-rollout", help="Stop after the registry change.")] = False,
    submit: Annotated[
        bool,
        typer.Option(
            "--submit",
            help="Run it on a worker through the Prefect deployment promote-model/on-demand (needs only "
            "PREFECT_API_URL and MLOPS_API_KEY), streaming its log; same exit codes, 4 when Prefect is unreachable.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="With --submit: give up (exit 4) after this many seconds.")
    ] = 600,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Promote a version through its gates (runs flow promote-model). Exit 1 when a gate rejects it, also with
    --dry-run (exit 0: the gates would pass)."""
    from core.errors import GateRejected
    from tasks.registry.rules import parse_model_ref, validate_stage

    org, project, model = parse_model_ref(model_ref)
    validate_stage(to_stage)
    check_text(version, "version", max_length=50)
    if reason is not None:
        check_text(reason, "--reason", max_length=100_000, required=False, multiline=True)
    params = dict(
        organization=org,
        project=project,
        model=model,
        version=version,
        to_stage=to_stage,
        reason=reason,
        dry_run=dry_run,
        force=force,
        rollout=not no_rollout,
        actor=as_email,
    )
    if submit:
        from services.auth import API_KEY_ENV, api_key_from_env
        from services.prefect_runs import submit_and_wait

        key = api_key_from_env()
        # the key travels as the run's environment (a job variable), never as a parameter or in a log line
        run_id = submit_and_wait(
            "promote-model/on-demand",
            params,
            timeout=timeout,
            echo=lambda line: typer.echo(line, err=as_json),
            env={API_KEY_ENV: key} if key else None,
        )
        if as_json:
            echo_json({"status": "completed", "flow_run_id": str(run_id), **params})
        else:
            typer.echo(f"flow run {run_id} completed: {model} {version} → {to_stage}")
        return
    from flows.promotion import promote_model
    from flows.runtime import run_flow

    try:
        result = run_flow(promote_model, **params)
    except GateRejected as rejected:
        if as_json:
            echo_json(
                {
                    "status": "rejected",
                    "model": model,
                    "version": version,
                    "to_stage": to_stage,
                    "gates": rejected.gates,
                }
            )
        else:
            print_gates(rejected.gates)
        raise
    would_reject = result["status"] == "dry_run" and not all(g["passed"] for g in result["gates"])
    if as_json:
        echo_json(result)
        if would_reject:
            raise typer.Exit(1)
        return
    print_gates(result["gates"])
    summary = {
        "promoted": f"{model} {version}: {result['from_stage']} → {result['to_stage']}",
        "demoted": f"{model} {version}: demoted {result['from_stage']} → {result['to_stage']}",
        "archived": f"{model} {version}: archived (was {result['from_stage']})",
        "noop": f"{model} {version} is already in {result['to_stage']}: nothing to do",
        "dry_run": f"dry run: {model} {version} {result['from_stage']} → {result['to_stage']} would "
        + ("pass" if all(g["passed"] for g in result["gates"]) else "be rejected")
        + "; nothing written",
    }[result["status"]]
    if result.get("forced"):
        summary += " (forced past the gates)"
    if result.get("archived_versions"):
        summary += f"; archived {', '.join(result['archived_versions'])}"
    typer.echo(summary)
    if would_reject:
        raise typer.Exit(1)  # like `terraform plan -detailed-exitcode`: CI can ask "would this pass?"
    if result["status"] == "promoted" and result["to_stage"] == "production":
        typer.echo(f"rollout: {result['rollout']}")


def history(
    model_ref: Annotated[str, typer.Argument(metavar="ORG/PROJECT/MODEL")],
    at: Annotated[str | None, typer.Option("--at", help="Which version was in production at this time.")] = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stage transitions of a model, or which version held production at a point in time."""
    from services.history import model_history, production_at
    from tasks.registry.rules import parse_model_ref

    org, project, model = parse_model_ref(model_ref)
    principal = principal_for(org, as_email)
    if at:
        holder = production_at(principal, project=project, model=model, at=parse_datetime(at, "--at"))
        if as_json:
            echo_json(holder)
        elif holder:
            typer.echo(f"{holder['version']} (in production since {holder['since']})")
        else:
            typer.echo(f"no version of {model} was in production at {at}")
        return
    rows = model_history(principal, project=project, model=model)

    def line(r: dict) -> str:
        actor = r["actor"] or ("API key" if r["api_key_id"] else "system")
        forced = " [forced]" if r["forced"] else ""
        return (
            f"{r['created_at']:%Y-%m-%d %H:%M:%S%z}  {r['version']:<10} {r['from_stage'] or '-':>11} → "
            f"{r['to_stage']:<11} {actor}{forced}  {r['reason'] or ''}"
        )

    print_rows(rows, as_json, line)


def print_gates(gates: list[dict[str, Any]]) -> None:
    for gate in gates:
        typer.echo(f"  {'pass' if gate['passed'] else 'FAIL'}  {gate['gate']:<20} {gate['detail']}")
