"""`mlops events`: what the flows wrote to the outbox (`notification_events`), newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli.common import AsOption, JsonOption, OrgOption, principal_for, print_rows


def events(
    organization: OrgOption = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only events not yet dispatched.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Newest events to show.")] = 50,
    as_email: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Outbox events (promotions, rollouts, alerts, drift, experiments), newest first; `--pending`: not yet
    dispatched to any channel."""
    from services.listings import read_events

    rows = read_events(principal_for(organization, as_email), pending=pending, limit=limit)

    def line(r: dict) -> str:
        where = "/".join(x for x in (r["project"], r["deployment"]) if x) + (
            f" ({r['environment']})" if r["environment"] else ""
        )
        dispatched = f"{r['dispatched_at']:%Y-%m-%d %H:%M}" if r["dispatched_at"] else "pending"
        return (
            f"{r['created_at']:%Y-%m-%d %H:%M} {r['trigger_type']:<20} {r['event_type']:<28} "
            f"{r['severity']:<8} {where:<32} {dispatched}"
        )

    print_rows(
        rows,
        as_json,
        line,
        header=f"{'created (UTC)':<17} {'trigger':<20} {'event':<28} {'severity':<8} {'where':<32} dispatched",
        empty="no pending events" if pending else "no events",
    )
