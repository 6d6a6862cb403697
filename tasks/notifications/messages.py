"""Notification messages (pure): Standard Webhooks signing and the bodies for webhooks, Slack, Teams and e-mail.

A message carries one event, or a deployment's events grouped within `group_wait`. Its id is the delivery id
(the first delivery's, for a group): the same on every retry, so receivers drop repeats (`webhook-id`, the
e-mail `Message-ID`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from tasks.notifications.rules import SEVERITY_RANK

_LINK = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
MESSAGE_ID_DOMAIN = "mlops.notifications"


@dataclass(frozen=True)
class EventView:
    """What a message says about one event."""

    id: uuid.UUID
    trigger_type: str
    event_type: str
    severity: str
    payload: Mapping[str, Any]
    created_at: datetime
    organization: str
    project: str | None = None
    deployment: str | None = None
    environment: str | None = None


@dataclass(frozen=True)
class Message:
    id: uuid.UUID  # the (first) delivery's id
    events: tuple[EventView, ...]

    @property
    def organization(self) -> str:
        return self.events[0].organization

    @property
    def severity(self) -> str:
        return max((e.severity for e in self.events), key=lambda s: SEVERITY_RANK.get(s, 0))


def link_free(text: str) -> str:
    """The text with every URL (http, s3, file, ...) replaced, so a summary never leaks a location."""
    return _LINK.sub("[link removed]", text)


def where(e: EventView) -> str:
    parts = [p for p in (e.organization, e.project, e.deployment) if p]
    return "/".join(parts) + (f" ({e.environment})" if e.environment else "")


def summary(e: EventView) -> str:
    """One line, no links: severity, event type, where, and the payload's message or title when it has one."""
    detail = e.payload.get("message") or e.payload.get("title") or ""
    if not detail and e.payload.get("version"):
        detail = f"{e.payload.get('model', 'model')} {e.payload['version']}"
        if e.payload.get("to_stage"):
            detail += f" -> {e.payload['to_stage']}"
    line = f"[{e.severity.upper()}] {e.event_type} on {where(e)}" + (f": {detail}" if detail else "")
    return link_free(str(line))[:1000]


def title(m: Message) -> str:
    if len(m.events) == 1:
        return summary(m.events[0]).split(": ", 1)[0]
    return f"[{m.severity.upper()}] {len(m.events)} events on {where(m.events[0])}"


def _event_json(e: EventView) -> dict[str, Any]:
    return {
        "event_id": str(e.id),
        "event_type": e.event_type,
        "trigger_type": e.trigger_type,
        "organization": e.organization,
        "project": e.project,
        "deployment": e.deployment,
        "environment": e.environment,
        "severity": e.severity,
        "created_at": e.created_at.astimezone(UTC).isoformat(),
        "summary": summary(e),
        "payload": dict(e.payload),
    }


def webhook_body(m: Message, now: datetime) -> bytes:
    """Standard Webhooks JSON (`type`, `timestamp`, `data`); a group is `notification.group` with its events."""
    if len(m.events) == 1:
        body = {"type": m.events[0].event_type, "timestamp": now.isoformat(), "data": _event_json(m.events[0])}
    else:
        body = {
            "type": "notification.group",
            "timestamp": now.isoformat(),
            "data": {
                "organization": m.organization,
                "severity": m.severity,
                "summary": title(m),
                "events": [_event_json(e) for e in m.events],
            },
        }
    return json.dumps(body, default=str, separators=(",", ":")).encode()


def slack_body(m: Message) -> bytes:
    """Incoming-webhook JSON with blocks (header, one line per event, context), `text` as the fallback."""
    lines = "\n".join(f"• {summary(e)}" for e in m.events)
    body = {
        "text": title(m),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title(m)[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{m.organization} · notification {m.id}"}]},
        ],
    }
    return json.dumps(body).encode()


def teams_body(m: Message) -> bytes:
    """Incoming-webhook message with one Adaptive Card."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title(m), "weight": "Bolder", "size": "Medium", "wrap": True},
            *({"type": "TextBlock", "text": summary(e), "wrap": True} for e in m.events),
            {"type": "TextBlock", "text": f"notification {m.id}", "isSubtle": True, "size": "Small"},
        ],
    }
    body = {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }
    return json.dumps(body).encode()


def email_message(m: Message, *, from_addr: str, to_addrs: Sequence[str]) -> EmailMessage:
    """Plain-text and HTML parts, one `Message-ID` per delivery (stable across retries)."""
    message = EmailMessage()
    message["Subject"] = title(m)
    message["From"] = from_addr
    message["To"] = ", ".join(to_addrs)
    message["Message-ID"] = f"<{m.id}@{MESSAGE_ID_DOMAIN}>"
    lines = [summary(e) for e in m.events]
    message.set_content("\n".join(lines) + f"\n\n-- notification {m.id}\n")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    message.add_alternative(
        f"<html><body><h3>{html.escape(title(m))}</h3><ul>{items}</ul>"
        f"<p style='color:#888'>notification {m.id}</p></body></html>",
        subtype="html",
    )
    return message


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (Standard Webhooks); any other secret is used as UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    mac = hmac.new(signing_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def webhook_headers(msg_id: str, timestamp: int, body: bytes, secret: str | None) -> dict[str, str]:
    """Content type and the Standard Webhooks headers (signature only when the channel has a signing secret)."""
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers
