"""`mlops rollout`, `mlops rollback`, `mlops terminate` and `mlops deployments`: change and list deployments."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops.cli.common import (
    AsOption,
    JsonOption,
    OrgOption,
    command_app,
    echo_json,
    parse_deployment_ref,
    principal_for,
    print_rows,
)

Ref = Annotated[str, typer.Argument(metavar="ORG/PROJECT/DEPLOYMENT", help="The deployment.")]
EnvOption = Annotated[str, typer.Option("--env", help="development, staging or production.")]

deployments_app = command_app(
    help="Deployments: status, version, traffic and last action; `history` for one deployment.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def rollout(
    deployment_ref: Ref,
    environment: EnvOption,
    version: Annotated[str, typer.Option("--version", help="The version to roll out, e.g. 1.1.0.")],
    steps: Annotated[str | None, typer.Option("--steps", help="Traffic percents, e.g. 10,50,100.")] = None,
    bake: Annotated[float | None, typer.Option("--bake", help="Seconds to watch each step's monitoring.")] = None,
    health_timeout: Annotated[
        float | None, typer.Option("--health-timeout", help="Seconds a step may take to become healthy.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Deploy a version whose stage does not fit (admins).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; required with --force.")] = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Roll a version out in traffic steps (flow rollout-deployment); a failed step rolls back by itself.
    Exit 1 when it failed (and was reverted) or another rollout of the deployment is running."""
    from flows.rollout import rollout_deployment
    from tasks.rollout.rules import Overrides, parse_steps, validate_overrides

    ref = parse_deployment_ref(deployment_ref, environment)
    parsed_steps = list(parse_steps(steps)) if steps is not None else None
    validate_overrides(Overrides(bake_seconds=bake, health_timeout_seconds=health_timeout))
    _run_change(
        rollout_deployment,
        ref,
        environment,
        as_json,
        version=version,
        steps=parsed_steps,
        bake_seconds=bake,
        health_timeout_seconds=health_timeout,
        force=force,
        reason=reason,
        actor=as_email,
    )


def rollback(
    deployment_ref: Ref,
    environment: EnvOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in history and audit).")],
    to_version: Annotated[
        str | None, typer.Option("--to-version", help="Roll back to this version (default: the previous one).")
    ] = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give the deployment's traffic back to the previous completed version (flow rollback-deployment); in
    production the registry follows. Repeating it changes nothing."""
    from flows.rollout import rollback_deployment

    ref = parse_deployment_ref(deployment_ref, environment)
    _run_change(rollback_deployment, ref, environment, as_json, to_version=to_version, reason=reason, actor=as_email)


def terminate(
    deployment_ref: Ref,
    environment: EnvOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in history and audit).")],
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop serving (flow terminate-deployment): the platform gets no traffic, the deployment becomes inactive.
    Repeating it changes nothing."""
    from flows.rollout import terminate_deployment

    ref = parse_deployment_ref(deployment_ref, environment)
    _run_change(terminate_deployment, ref, environment, as_json, reason=reason, actor=as_email)


def _run_change(flow_obj: Any, ref: tuple[str, str, str], environment: str, as_json: bool, **params: Any) -> None:
    """Run a flow that changes the deployment `ref` and print its summary, also when it failed (then re-raise:
    the exit code is the failure's)."""
    from core.errors import RolloutFailed
    from flows.runtime import run_flow

    org, project, name = ref
    try:
        summary = run_flow(
            flow_obj, organization=org, project=project, deployment=name, environment=environment, **params
        )
    except RolloutFailed as failed:
        _print(failed.summary, as_json)
        raise
    _print(summary, as_json)


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(summary)
        return
    if summary.get("status") == "noop":
        typer.echo(summary["message"])
        return
    for note in summary.get("recovered") or []:
        typer.echo(f"note: {note}")
    for n, step in enumerate(summary.get("steps") or [], 1):
        verdict = "ok    " if step["ok"] else "FAILED"
        typer.echo(f"   step {n}  {step['percent']:>3}%  {verdict} {step['seconds']:6.2f}s  {step['detail']}")
    kind, target = summary.get("kind"), summary["deployment"]
    if summary.get("status") == "completed":
        what = {
            "rollout": f"{summary.get('previous_version') or '-'} -> {summary['version']} rolled out",
            "rollback": f"rolled back to {summary['version']}",
            "terminate": "terminated",
        }[kind]
        typer.echo(f"{target}: {what}")
        if summary.get("driven") is False:
            typer.echo("   registry-only deployment: history recorded, no serving platform was driven")
    else:
        typer.echo(f"{target}: {kind} FAILED: {summary.get('message') or summary.get('error')}")
    for move in summary.get("registry_restored") or []:
        typer.echo(f"   registry: {move}")


@deployments_app.callback()
def deployments(
    ctx: typer.Context,
    organization: OrgOption = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every deployment of the organization: status, version, traffic and last action."""
    if ctx.invoked_subcommand is not None:
        return
    from tasks.rollout.service import list_deployments

    def line(r: dict) -> str:
        traffic = " + ".join(f"{t['model_version']} {t['percent']}%" for t in r["traffic"]) or "-"
        last = f"{r['last_action']} {r['last_status']} {r['last_at']:%Y-%m-%d %H:%M}" if r["last_action"] else "-"
        return (
            f"{r['project'] + '/' + r['name']:<40} {r['environment']:<11} {r['status'] or '-':<11} "
            f"{r['version']:<9} {traffic:<24} {last}"
        )

    print_rows(
        list_deployments(principal_for(organization, as_email)),
        as_json,
        line,
        header=f"{'deployment':<40} {'env':<11} {'status':<11} {'version':<9} {'traffic':<24} last action",
        empty="no deployments",
    )


@deployments_app.command("history")
def history(
    deployment_ref: Ref,
    environment: EnvOption,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """One deployment's history, newest first: action, version, status, who, when, error."""
    from tasks.rollout.plan import ChangeRequest
    from tasks.rollout.service import deployment_history

    org, project, name = parse_deployment_ref(deployment_ref, environment)
    request = ChangeRequest(organization=org, project=project, deployment=name, environment=environment)

    def line(r: dict) -> str:
        ended = f"{r['completed_at']:%H:%M:%S}" if r["completed_at"] else "-"
        error = f"  {r['error_message']}" if r["error_message"] else ""
        return (
            f"{r['started_at']:%Y-%m-%d %H:%M:%S} {ended:>8}  {r['action']:<9} {r['version']:<9} "
            f"{r['status']:<11} {r['performed_by'] or '-'}{error}"
        )

    print_rows(deployment_history(principal_for(org, as_email), request), as_json, line)
