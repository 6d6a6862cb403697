"""Flow `dispatch-notifications`: outbox events -> per-channel deliveries -> Slack / Teams / webhooks / e-mail."""

from __future__ import annotations

from typing import Any

from core.errors import DispatchFailed
from flows.runtime import (
    ItemFailure,
    call,
    control_flow,
    finish_per_organization,
    logger,
    map_calls,
    run_name,
)
from tasks.notifications.service import DispatchSettings, OrganizationDispatch
from tasks.notifications.tasks import fan_out, send_due
from tasks.shared.organizations import list_organizations


@control_flow(
    name="dispatch-notifications",
    flow_run_name=run_name("dispatch-notifications-{organization}", organization="all-organizations"),
)
def dispatch_notifications(organization: str | None = None, settings: DispatchSettings | None = None) -> dict[str, Any]:
    """Deliver what the other flows wrote to the outbox, exactly once per event and channel.

    1. Fan out: every undispatched event is matched against its organization's active rules and becomes one
       delivery per channel (acknowledged alerts, repeats within `repeat_interval` and second resolutions are
       suppressed); the event is marked dispatched in the same transaction.
    2. Send: due deliveries are claimed (`FOR UPDATE SKIP LOCKED`, with a claim expiry, so parallel runs never
       send one twice while it is claimed), sent concurrently, and their outcomes recorded: delivered, failed
       (retried with backoff and jitter, Retry-After honoured) or dead (refused, or out of attempts: an alert
       and a `notification.dead` event, never sent to the dead channel).

    Args:
        organization: Organization slug; every organization with an active subscription when empty.
        settings: Batch sizes, concurrency, claim expiry, backoff and grouping defaults.
    """
    log = logger()
    settings = settings or DispatchSettings()
    orgs, notes = call(list_organizations, organization)
    fanned = map_calls(fan_out, orgs, settings)
    sent = map_calls(send_due, orgs, settings)
    results = []
    for org, fan, send in zip(orgs, fanned, sent, strict=True):
        run = OrganizationDispatch(organization=org[1])
        if isinstance(fan, ItemFailure):
            run.status = "failed"
            run.notes.append(f"fan-out failed: {fan}")
        else:
            run.events, run.deliveries_created, run.suppressed = fan.events, fan.deliveries_created, fan.suppressed
            run.notes += fan.notes
        if isinstance(send, ItemFailure):
            run.status = "failed"
            run.notes.append(f"sending failed: {send}")
        else:
            for name in ("delivered", "failed", "dead", "messages", "lost_claims"):
                setattr(run, name, getattr(send, name))
        for note in run.notes:
            log.warning("%s: %s", run.organization, note)
        log.info(
            "%s: %s, %d event(s) -> %d deliveries (suppressed %s); %d message(s): %d delivered, %d failed, %d dead",
            run.organization,
            run.status,
            run.events,
            run.deliveries_created,
            run.suppressed or "none",
            run.messages,
            run.delivered,
            run.failed,
            run.dead,
        )
        results.append(run.to_json())
    return finish_per_organization(
        results,
        notes,
        error=DispatchFailed,
        what="dispatch",
        key="dispatch-notifications",
        description="Notification dispatch per organization",
        not_in_table=("notes", "suppressed"),
    )
