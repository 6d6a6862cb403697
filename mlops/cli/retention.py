"""`mlops retention`: enforce the retention policy, restore an archived month of audit logs, list archives."""

from __future__ import annotations

from typing import Annotated

import typer

from core.errors import InvalidInput, MlopsError
from mlops.cli.common import AsOption, JsonOption, OrgOption, command_app, echo_json, has_identity, print_rows

app = command_app(
    help="Retention: archive and delete what the policy lets go; restore archived audit logs.",
    invoke_without_command=True,
)


@app.callback()
def retention(
    ctx: typer.Context,
    organization: OrgOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would go; change nothing.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per delete transaction.")] = 5_000,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enforce the retention policy (flow enforce-retention) for every organization or one. Without --as or
    MLOPS_API_KEY it runs as the system, like the daily schedule. Exit 1 when anything failed."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.retention import enforce_retention
    from flows.runtime import run_flow

    summary = run_flow(
        enforce_retention,
        organization=organization,
        dry_run=dry_run,
        batch_size=batch_size,
        actor=as_email,
        on_demand=has_identity(as_email),  # with --as or MLOPS_API_KEY: as the caller; without: as the system
    )
    if as_json:
        echo_json(summary)
    else:
        _print_summary(summary)
    if summary["failed"]:
        raise MlopsError(f"retention failed or was skipped for {summary['failed']} organization(s)")


def _print_summary(summary: dict) -> None:
    from tasks.retention.rules import CategoryReport, OrgReport, table_rows

    reports = [
        OrgReport(**{**r, "categories": [CategoryReport(**c) for c in r["categories"]]})
        for r in ({k: v for k, v in o.items() if k != "failures"} for o in summary["organizations"])
    ]
    verb = "would remove" if summary["dry_run"] else "removed"
    typer.echo(f"{'DRY RUN: ' if summary['dry_run'] else ''}retention as of {summary['as_of'][:19]}Z")
    typer.echo(f"{'organization':<14} {'category':<24} {verb:>12} {'kept':>6}  detail")
    rows = table_rows(reports)
    for report in reports:
        shown = [
            r
            for r in rows
            if r["organization"] == report.organization
            and (r["count"] or r["held"] or r["status"] in ("failed", "skipped"))
        ]
        if not shown:
            typer.echo(f"{report.organization:<14} {'(nothing expired)':<24}")
        for row in shown:
            flag = f"{row['status']}: " if row["status"] in ("failed", "skipped") else ""
            line = f"{row['organization']:<14} {row['category']:<24} {row['count']:>12} {row['held']:>6}  {flag}"
            typer.echo((line + row["detail"]).rstrip())


@app.command("restore")
def restore(
    category: Annotated[str, typer.Argument(help="What to restore: audit_logs.")],
    organization: OrgOption = None,
    month: Annotated[str | None, typer.Option("--month", help="The archived month, YYYY-MM (UTC).")] = None,
    keep_days: Annotated[
        int,
        typer.Option("--keep-days", help="Keep the restored rows this many days before retention deletes them again."),
    ] = 30,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load an archived month back into the database, byte for byte; rerunning it inserts nothing twice."""
    from tasks.retention.service import restore_audit_month

    if category != "audit_logs":
        raise InvalidInput(f"only audit_logs archives can be restored, not '{category}'")
    if not organization:
        raise InvalidInput("--org is required")
    if not month:
        raise InvalidInput("--month YYYY-MM is required")
    principal = _principal(organization, as_email)
    result = restore_audit_month(organization, month, keep_days=keep_days, principal=principal)
    if as_json:
        echo_json(result)
        return
    typer.echo(
        f"{result['archive']}: {result['archived_rows']} archived row(s); restored {result['inserted']}, "
        f"{result['already_present']} already present; held until {result['held_until'][:19]}Z"
    )
    if result["references_gone"]:
        typer.echo(
            f"note: {result['references_gone']} row(s) name a user or API key deleted since; restored "
            "with that reference empty, as ON DELETE SET NULL would have left them"
        )


@app.command("archives")
def archives(organization: OrgOption = None, as_json: JsonOption = False) -> None:
    """List the archived months (from the archive ledger), per organization."""
    from tasks.retention.service import list_archive_records

    def line(r: dict) -> str:
        held = r["held_until"].strftime("%Y-%m-%d") if r["held_until"] else ""
        return (
            f"{r['organization']:<14} {r['period']:<8} {r['row_count']:>8} {r['checksum'][:12]:<12}  "
            f"{held:<10}  {r['object_key']}"
        )

    print_rows(
        list_archive_records(organization),
        as_json,
        line,
        header=f"{'organization':<14} {'month':<8} {'rows':>8} {'checksum':<12}  {'held until':<10}  object key",
        empty="no archives yet",
    )


def _principal(organization: str, as_email: str | None):
    """The acting user (who needs `retention.run`), or None for the system (an operator with database access)."""
    if not has_identity(as_email):
        return None
    from mlops.cli.common import principal_for
    from tasks.retention.service import authorize_run

    principal = principal_for(organization, as_email)
    authorize_run(principal, organization, audit_action="retention.restore")
    return principal
