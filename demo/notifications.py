"""`mlops demo` step: dispatch the events the other flows wrote to the outbox to a local webhook receiver, and
print what it received (signature checked)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from core.vocabulary import TriggerType
from db.models import NotificationChannel, NotificationRule
from db.session import session_scope
from demo.seed import ADMIN, ORG
from flows.notification_dispatch import dispatch_notifications
from flows.runtime import run_flow
from services.auth import resolve_principal
from services.secrets import secret_box
from tasks.notifications.channels import seal
from tasks.notifications.messages import sign

Echo = Callable[[str], None]
CHANNEL = "demo-receiver"
# a demo value, not a secret: the receiver below checks every signature with it
DEMO_SIGNING_SECRET = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC1ub3QtYS1zZWNyZXQ="


class _Receiver:
    """A webhook receiver on 127.0.0.1 that records every request and checks its Standard Webhooks signature."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                msg_id, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "0")
                expected = sign(DEMO_SIGNING_SECRET, msg_id, int(ts), body)
                receiver.received.append(
                    {
                        "id": msg_id,
                        "signed": self.headers.get("webhook-signature") == expected,
                        "body": json.loads(body),
                    }
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mlops-events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _point_channel_at(url: str) -> bool:
    """The demo channel (created once, its URL updated to this run's receiver) and one organization-wide rule per
    trigger type, sent at once (group_wait 0). Returns whether the rules were created now."""
    principal = resolve_principal(organization=ORG, as_email=ADMIN)
    config = seal("webhook", {"url": url, "signing_secret": DEMO_SIGNING_SECRET, "timeout_seconds": 5}, secret_box())
    created = False
    with session_scope(principal.organization_id) as session:
        channel = session.scalar(
            select(NotificationChannel).where(
                NotificationChannel.name == CHANNEL, NotificationChannel.deleted_at.is_(None)
            )
        )
        if channel is None:
            channel = NotificationChannel(
                organization_id=principal.organization_id,
                name=CHANNEL,
                type="webhook",
                configuration=config,
                created_by=principal.user_id,
            )
            session.add(channel)
            session.flush()
        else:
            channel.configuration = config
        for trigger in TriggerType:
            exists = session.scalar(
                select(NotificationRule.id).where(
                    NotificationRule.channel_id == channel.id, NotificationRule.trigger_type == trigger
                )
            )
            if exists is None:
                created = True
                session.add(
                    NotificationRule(
                        organization_id=principal.organization_id,
                        channel_id=channel.id,
                        trigger_type=trigger,
                        conditions={"group_wait": 0},
                        created_by=principal.user_id,
                    )
                )
    return created


def run_notifications_demo(echo: Echo) -> str:
    """Dispatch the outbox to a local receiver and show what it got; returns a line for the summary table."""
    receiver = _Receiver()
    try:
        if _point_channel_at(receiver.url):
            echo(f"added channel '{CHANNEL}' (a local webhook receiver) with a rule for every trigger type")
        summary = run_flow(dispatch_notifications, orchestrate=True, organization=ORG)
    finally:
        receiver.close()
    for org in summary["organizations"]:
        suppressed = ", ".join(f"{k} {v}" for k, v in sorted(org["suppressed"].items())) or "none"
        echo(
            f"{org['organization']}: {org['events']} event(s) -> {org['deliveries_created']} delivery(ies) "
            f"(suppressed: {suppressed}); {org['delivered']} delivered, {org['failed']} to retry, {org['dead']} dead"
            + (f", {waiting} waiting for their rule's group_wait" if (waiting := _not_due(org)) else "")
        )
    if not receiver.received:
        echo("unchanged: the receiver got nothing new (every event was dispatched already)")
        return "0 (unchanged)"
    echo(f"the local receiver got {len(receiver.received)} signed webhook(s):")
    for r in receiver.received:
        data = r["body"]["data"]
        lines = [e["summary"] for e in data["events"]] if "events" in data else [data["summary"]]
        mark = "signature ok" if r["signed"] else "BAD SIGNATURE"
        echo(f"   {r['id'][:8]}  {mark}  {lines[0]}")
        for line in lines[1:]:
            echo(f"   {'':8}  {'':12}  {line}")
    waiting = sum(org["failed"] for org in summary["organizations"])
    if waiting:
        echo("   (the seeded 'ops-webhook' channel points at a closed port: its deliveries wait for a retry)")
    return f"{len(receiver.received)} signed webhooks to the local receiver; {waiting} waiting for a retry"


def _not_due(org: dict) -> int:
    """Deliveries created by this run but not sent yet: their rule groups events for `group_wait` first."""
    return max(org["deliveries_created"] - org["delivered"] - org["failed"] - org["dead"], 0)
