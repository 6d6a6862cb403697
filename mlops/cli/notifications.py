"""`mlops dispatch`, `mlops rules`, `mlops deliveries` and `mlops alerts`: notification dispatch and what it acts on."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from core.errors import InvalidInput
from mlops.cli.common import AsOption, JsonOption, OrgOption, command_app, echo_json, principal_for, print_rows

rules_app = command_app(help="Notification rules: which events go to which channel.", no_args_is_help=True)
deliveries_app = command_app(help="The per-channel delivery log.", invoke_without_command=True)
alerts_app = command_app(help="Alerts: list, acknowledge, resolve.", invoke_without_command=True)

StatusOption = Annotated[str | None, typer.Option("--status", help="Only this status.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many rows.")]


def dispatch(organization: OrgOption = None, as_json: JsonOption = False) -> None:
    """Deliver pending notifications now (flow dispatch-notifications), as the every-minute schedule does; exit 1
    when an organization failed."""
    from core.errors import DispatchFailed
    from flows.notification_dispatch import dispatch_notifications
    from flows.runtime import run_flow

    try:
        summary = run_flow(dispatch_notifications, organization=organization)
    except DispatchFailed as failed:
        _print_dispatch(failed.summary, as_json)
        raise
    _print_dispatch(summary, as_json)


def _print_dispatch(summary: dict, as_json: bool) -> None:
    if as_json:
        echo_json(summary)
        return
    for org in summary["organizations"]:
        suppressed = ", ".join(f"{k} {v}" for k, v in sorted(org["suppressed"].items())) or "none"
        typer.echo(
            f"{org['organization']}: {org['status']}; {org['events']} event(s) -> {org['deliveries_created']} "
            f"delivery(ies) (suppressed: {suppressed}); {org['messages']} message(s): {org['delivered']} delivered, "
            f"{org['failed']} to retry, {org['dead']} dead"
        )
        for note in org["notes"]:
            typer.echo(f"  note: {note}")
    for note in summary["notes"]:
        typer.echo(f"note: {note}")
    if not summary["organizations"]:
        typer.echo("no organization to dispatch")


@rules_app.command("add")
def rules_add(
    channel: Annotated[str, typer.Option("--channel", help="Channel name.")],
    trigger: Annotated[str, typer.Option("--trigger", help="alert, deployment, model_update, experiment_complete.")],
    project: Annotated[str | None, typer.Option("--project", help="Only this project (slug).")] = None,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only this deployment: ORG/PROJECT/DEPLOYMENT (with --env).")
    ] = None,
    environment: Annotated[str | None, typer.Option("--env", help="The deployment's environment.")] = None,
    conditions: Annotated[str | None, typer.Option("--conditions", help="Conditions as a JSON object.")] = None,
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Add a rule: organization-wide, for a project, or for one deployment, with optional conditions."""
    from tasks.notifications.admin import add_rule

    parsed = None
    if conditions is not None:
        try:
            parsed = json.loads(conditions)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--conditions is not valid JSON ({exc.msg})") from None
    name = None
    if deployment is not None:
        parts = deployment.split("/")
        if len(parts) != 3 or not all(parts):
            raise InvalidInput(f"--deployment '{deployment}' is not ORG/PROJECT/DEPLOYMENT")
        org, dep_project, name = parts
        if project is not None and project != dep_project:
            raise InvalidInput(f"--project {project} differs from the deployment's project {dep_project}")
        if organization is not None and organization != org:
            raise InvalidInput(f"--org {organization} differs from the deployment's organization {org}")
        organization, project = org, dep_project
    rule = add_rule(
        principal_for(organization, as_email),
        channel=channel,
        trigger=trigger,
        project=project,
        deployment=name,
        environment=environment,
        conditions=parsed,
    )
    scope = deployment or (f"project {project}" if project else "the whole organization")
    typer.echo(f"added rule {rule['id']}: {trigger} events of {scope} -> channel '{channel}'")


@rules_app.command("list")
def rules_list(organization: OrgOption = None, as_email: AsOption = None, as_json: JsonOption = False) -> None:
    """List the organization's rules."""
    from tasks.notifications.admin import list_rules

    rows = list_rules(principal_for(organization, as_email))

    def line(r: dict) -> str:
        scope = f"{r['project']}/{r['deployment']} ({r['environment']})" if r["deployment"] else r["project"] or "*"
        return (
            f"{r['id']}  {r['trigger_type']:<19} {scope:<40} -> {r['channel']}  "
            f"{'active' if r['active'] else 'inactive'}  {json.dumps(r['conditions'] or {})}"
        )

    print_rows(rows, as_json, line)


@deliveries_app.callback()
def deliveries(
    ctx: typer.Context,
    status: StatusOption = None,
    limit: LimitOption = 100,
    organization: OrgOption = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """The delivery log, newest first (`mlops deliveries retry ID` re-queues a dead one)."""
    if ctx.invoked_subcommand is not None:
        return
    from tasks.notifications.admin import list_deliveries

    rows = list_deliveries(principal_for(organization, as_email), status=status, limit=limit)

    def line(r: dict) -> str:
        code = r["response_code"] if r["response_code"] is not None else "-"
        return (
            f"{r['id']}  {r['status']:<9} {r['attempts']:>2} tries  {code!s:>3}  {r['channel']:<16} "
            f"{r['event_type']:<28} {r['last_error'] or ''}"
        )

    print_rows(rows, as_json, line, empty="no deliveries" + (f" with status {status}" if status else ""))


@deliveries_app.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(metavar="ID", help="The delivery id.")],
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Re-queue a dead or failed delivery now, with a fresh set of attempts (audited)."""
    from tasks.notifications.admin import retry_delivery

    previous = retry_delivery(principal_for(organization, as_email), delivery_id)
    typer.echo(f"delivery {delivery_id}: {previous} -> pending; the next dispatch sends it")


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    status: StatusOption = None,
    limit: LimitOption = 100,
    organization: OrgOption = None,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """The organization's alerts, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from tasks.notifications.admin import list_alerts

    rows = list_alerts(principal_for(organization, as_email), status=status, limit=limit)

    def line(r: dict) -> str:
        where = f"{r['deployment']} ({r['environment']})" if r["deployment"] else "organization"
        return f"{r['id']}  {r['status']:<12} {r['severity']:<8} {r['alert_type']:<24} {where:<32} {r['title']}"

    print_rows(rows, as_json, line, empty="no alerts" + (f" with status {status}" if status else ""))


def _change(alert_id: str, to_status: str, organization: str | None, as_email: str | None) -> None:
    from tasks.notifications.admin import change_alert

    outcome = change_alert(principal_for(organization, as_email), alert_id, to_status)
    typer.echo(f"alert {alert_id}: {to_status}" if outcome == "changed" else f"alert {alert_id}: already {to_status}")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(metavar="ID")], organization: OrgOption = None, as_email: AsOption = None
) -> None:
    """Acknowledge an alert: it is not notified again (audited)."""
    _change(alert_id, "acknowledged", organization, as_email)


@alerts_app.command("resolve")
def alerts_resolve(
    alert_id: Annotated[str, typer.Argument(metavar="ID")], organization: OrgOption = None, as_email: AsOption = None
) -> None:
    """Resolve an alert: one resolution message goes to its channels (audited)."""
    _change(alert_id, "resolved", organization, as_email)
