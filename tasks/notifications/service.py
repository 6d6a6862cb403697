"""Notification dispatch's transactions: fan events out into deliveries, then claim, send and record them.

The rules are pure (`tasks.notifications.rules`, `tasks.notifications.messages`); the SQL is in
`db/queries/notifications.py`; only `services.senders` talks to channels; the Prefect tasks are
`tasks.notifications.tasks`. Secrets are decrypted here, in the
sending task, just before the send, and never logged or stored in an error (errors name the kind of failure).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from db.queries import notifications as q
from db.session import session_scope
from services.outbox import emit_event
from services.secrets import secret_box
from services.senders import HttpRequest, SendResult, post_many, send_email_message
from tasks.notifications.channels import unseal
from tasks.notifications.messages import (
    EventView,
    Message,
    email_message,
    slack_body,
    teams_body,
    webhook_body,
    webhook_headers,
)
from tasks.notifications.rules import (
    DEAD_LETTER_EVENT,
    AlertState,
    Attempt,
    Backoff,
    EventFacts,
    RuleRow,
    alert_verdict,
    decide,
    plan_fanout,
)

FANOUT_BATCH = 2000  # events fanned out per transaction


@dataclass(frozen=True)
class DispatchSettings:
    """Tunables of one dispatch run (defaults for production; tests and benchmarks shorten the waits)."""

    batch_size: int = 500  # deliveries claimed per transaction
    concurrency: int = 32  # sends in flight per dispatcher
    claim_seconds: float = 300.0  # longer than any send can take (HTTP and SMTP timeouts are 10 s)
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8
    group_wait_seconds: float = 30.0
    repeat_interval_seconds: float = 4 * 3600.0
    max_batches: int = 10_000  # bound on one run's send loop

    @property
    def backoff(self) -> Backoff:
        return Backoff(base_seconds=self.base_seconds, cap_seconds=self.cap_seconds, max_attempts=self.max_attempts)


@dataclass
class OrganizationDispatch:
    """What one dispatch run did for one organization."""

    organization: str
    status: str = "done"
    events: int = 0
    deliveries_created: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    messages: int = 0
    lost_claims: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- fan-out ----------------------------------------------------------------------------------------------


def _facts(row: q.EventRow) -> EventFacts:
    return EventFacts(**{k: getattr(row, k) for k in EventFacts.__dataclass_fields__})


def _rules(rows: Sequence[dict[str, Any]]) -> list[RuleRow]:
    return [RuleRow(**r) for r in rows]


def fan_out(org: tuple[uuid.UUID, str], settings: DispatchSettings) -> OrganizationDispatch:
    """Turn every undispatched event into deliveries (marking it dispatched in the same transaction)."""
    org_id, slug = org
    run = OrganizationDispatch(organization=slug)
    reported: set[uuid.UUID] = set()
    default_repeat = timedelta(seconds=settings.repeat_interval_seconds)
    default_wait = timedelta(seconds=settings.group_wait_seconds)
    while True:
        with session_scope(org_id) as session:
            rows = q.claim_undispatched_events(session=session, limit=FANOUT_BATCH)
            if not rows:
                return run
            rule_rows = q.active_rules(session=session)
            events = [_facts(r) for r in rows]
            plan = plan_fanout(
                events, _rules(rule_rows), default_repeat=default_repeat, default_group_wait=default_wait
            )
            by_id = {e.id: e for e in events}
            alert_ids = sorted({e.alert_id for e in events if e.alert_id is not None}, key=str)
            states: dict = {}
            if alert_ids:
                q.lock_alerts(session=session, alert_ids=alert_ids)
                states = q.alert_states(session=session, alert_ids=alert_ids)
            now = datetime.now(UTC)
            inserts, notified = [], []
            for target in plan.targets:
                e = by_id[target.event_id]
                key = (e.alert_id, target.channel_id)
                state = states.get(key)
                verdict = alert_verdict(
                    e,
                    AlertState(state.last_notified_at, state.resolution_notified_at) if state else None,
                    target.repeat_interval,
                    now,
                )
                if verdict != "send":
                    run.suppressed[verdict] = run.suppressed.get(verdict, 0) + 1
                    continue
                if e.alert_id is not None and e.alert_status is not None:
                    notified.append((e.alert_id, target.channel_id, e.is_resolution))
                    # a second event of the same alert in this batch sees this one
                    last = state.last_notified_at if state else None
                    resolved = state.resolution_notified_at if state else None
                    states[key] = AlertState(last if e.is_resolution else now, now if e.is_resolution else resolved)
                grouped = e.deployment_id is not None and target.group_wait > timedelta(0)
                inserts.append(
                    {
                        "event_id": e.id,
                        "channel_id": target.channel_id,
                        "rule_id": target.rule_id,
                        "group_key": str(e.deployment_id) if grouped else None,
                        "group_wait": target.group_wait.total_seconds(),
                        "created_at": e.created_at,
                    }
                )
            run.deliveries_created += q.insert_deliveries(session=session, organization_id=org_id, rows=inserts)
            q.save_alert_states(session=session, organization_id=org_id, notified=notified)
            q.mark_dispatched(session=session, event_ids=[e.id for e in events])
            run.events += len(events)
            for rule_id, why in plan.invalid_rules.items():
                if rule_id not in reported:
                    reported.add(rule_id)
                    _report_invalid_rule(session, org_id, rule_id, why, rule_rows, run)


def _report_invalid_rule(session, org_id, rule_id, why, rule_rows, run: OrganizationDispatch) -> None:
    """A note per run (the flow logs it as one line), one event per (rule, conditions) ever: the rule is
    skipped, the others go on."""
    conditions = next((r["conditions"] for r in rule_rows if r["id"] == rule_id), None)
    digest = hashlib.sha256(json.dumps(conditions, sort_keys=True, default=str).encode()).hexdigest()[:16]
    note = f"rule {rule_id} skipped: {why}"
    run.notes.append(note)
    emit_event(
        session,
        organization_id=org_id,
        trigger_type="alert",
        event_type="notification_rule.invalid",
        severity="medium",
        payload={"rule_id": str(rule_id), "message": note},
        dedup_key=f"notification_rule.invalid:{rule_id}:{digest}",
    )


# --- sending ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One message to send: the deliveries it settles (a group settles several) and its channel."""

    message: Message
    deliveries: tuple[q.Claimed, ...]
    channel: dict[str, Any]


def build_outgoing(
    claimed: Sequence[q.Claimed], events: dict[uuid.UUID, dict[str, Any]], channels: dict[uuid.UUID, dict[str, Any]]
) -> list[Outgoing]:
    """Messages for claimed deliveries: one per delivery, or one per (channel, group) of a deployment's events.

    The message id is the delivery id of the group's oldest event, stable across retries of the same group.
    """
    buckets: dict[tuple[Any, ...], list[q.Claimed]] = {}
    for c in claimed:
        key = (c.channel_id, c.group_key) if c.group_key else (c.id,)
        buckets.setdefault(key, []).append(c)
    out = []
    for members in buckets.values():
        members.sort(key=lambda c: (events[c.event_id]["created_at"], str(c.id)))
        views = tuple(EventView(**{k: events[c.event_id][k] for k in EventView.__dataclass_fields__}) for c in members)
        out.append(Outgoing(Message(members[0].id, views), tuple(members), channels.get(members[0].channel_id) or {}))
    return out


def _request(o: Outgoing, settings: dict[str, Any], now: datetime) -> HttpRequest:
    kind = o.channel["type"]
    timeout = float(settings.get("timeout_seconds", 10))
    if kind == "webhook":
        body = webhook_body(o.message, now)
        headers = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}
        secret = settings.get("signing_secret")
        headers.update(webhook_headers(str(o.message.id), int(now.timestamp()), body, str(secret) if secret else None))
        return HttpRequest(str(settings["url"]), body, headers, timeout)
    body = slack_body(o.message) if kind == "slack" else teams_body(o.message)
    return HttpRequest(str(settings["webhook_url"]), body, {"Content-Type": "application/json"}, timeout)


def send_all(outgoing: Sequence[Outgoing], concurrency: int) -> list[Attempt]:
    """Send every message concurrently (HTTP over async keep-alive connections, SMTP in threads)."""
    box = secret_box()
    now = datetime.now(UTC)
    results: list[Attempt | None] = [None] * len(outgoing)
    http: list[tuple[int, HttpRequest]] = []
    mail: list[tuple[int, dict[str, Any], Any]] = []
    unsealed: dict[uuid.UUID, dict[str, Any]] = {}
    for i, o in enumerate(outgoing):
        if not o.channel:
            results[i] = Attempt(None, error="channel no longer exists", kind="permanent")
            continue
        try:  # decrypted here, once per channel of this batch, and dropped when the batch is sent
            settings = unsealed.get(o.channel["id"]) or unsealed.setdefault(
                o.channel["id"], unseal(o.channel["configuration"], box)
            )
        except Exception as exc:  # a missing or rotated-away key: say so without the value
            results[i] = Attempt(None, error=f"channel settings unreadable ({type(exc).__name__})")
            continue
        try:
            if o.channel["type"] == "email":
                to = settings["to_addrs"] if isinstance(settings["to_addrs"], list) else [settings["to_addrs"]]
                mail.append((i, settings, email_message(o.message, from_addr=settings["from_addr"], to_addrs=to)))
            else:
                http.append((i, _request(o, settings, now)))
        except (KeyError, TypeError, ValueError) as exc:  # written by another service without a required field
            results[i] = Attempt(None, error=f"channel settings incomplete ({type(exc).__name__})", kind="permanent")
    for (i, _), r in zip(http, post_many([r for _, r in http], concurrency=concurrency), strict=True):
        results[i] = _attempt(r)
    if mail:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(mail))) as pool:
            sent = list(pool.map(lambda m: send_email_message(m[1], m[2]), mail))
        for (i, _, _), r in zip(mail, sent, strict=True):
            results[i] = _attempt(r)
    return [r or Attempt(None, error="not sent") for r in results]


def _attempt(r: SendResult) -> Attempt:
    return Attempt(r.status_code, r.retry_after, r.error, r.kind)


def send_due(org: tuple[uuid.UUID, str], settings: DispatchSettings) -> OrganizationDispatch:
    """Claim due deliveries batch by batch, send them, record outcomes; dead ones open an alert and an event."""
    org_id, slug = org
    run = OrganizationDispatch(organization=slug)
    rng = random.Random()
    for _ in range(settings.max_batches):
        token = uuid.uuid4()
        with session_scope(org_id) as session:
            claimed = q.claim_due_deliveries(
                session=session, token=token, limit=settings.batch_size, claim_seconds=settings.claim_seconds
            )
            if not claimed:
                break
            events, channels = q.message_context(
                session=session,
                event_ids=[c.event_id for c in claimed],
                channel_ids=list({c.channel_id for c in claimed}),
            )
        outgoing = build_outgoing(claimed, events, channels)
        attempts = send_all(outgoing, settings.concurrency)
        now = datetime.now(UTC)
        outcomes, dead = [], []
        for o, attempt in zip(outgoing, attempts, strict=True):
            run.messages += 1
            for c in o.deliveries:
                d = decide(attempt, c.attempts, settings.backoff, now, rng)
                outcomes.append(
                    {
                        "id": c.id,
                        "status": d.status,
                        "next_attempt_at": d.next_attempt_at,
                        "last_error": d.last_error,
                        "response_code": attempt.status_code,
                    }
                )
                if d.status == "dead":
                    dead.append((c, o.channel, d.last_error))
        with session_scope(org_id) as session:
            written = q.record_outcomes(session=session, token=token, outcomes=outcomes)
            run.lost_claims += len(outcomes) - written
            if written == len(outcomes):
                _dead_letters(session, org_id, dead)
        for o in outcomes:
            setattr(run, o["status"], getattr(run, o["status"]) + 1)
    return run


def _dead_letters(session, org_id: uuid.UUID, dead: Sequence[tuple[q.Claimed, dict[str, Any], str | None]]) -> None:
    """Per dead delivery: the channel's alert (opened once) and a `notification.dead` event, which fan-out never
    sends to the dead channel. A dead-letter event's own death is not reported again (no ping-pong)."""
    for c, channel, error in dead:
        if c.event_type == DEAD_LETTER_EVENT:
            continue
        name = channel.get("name", str(c.channel_id))
        alert_id, _ = q.open_channel_alert(
            session=session,
            organization_id=org_id,
            channel_id=c.channel_id,
            title=f"Notification channel '{name}' is failing",
            message=f"a delivery to {channel.get('type', 'the')} channel '{name}' is dead: {error}",
        )
        emit_event(
            session,
            organization_id=org_id,
            trigger_type="alert",
            event_type=DEAD_LETTER_EVENT,
            severity="high",
            dedup_key=f"{DEAD_LETTER_EVENT}:{c.id}",
            payload={
                "channel_id": str(c.channel_id),
                "channel": name,
                "delivery_id": str(c.id),
                "event_id": str(c.event_id),
                "event_type": c.event_type,
                "alert_id": str(alert_id),
                "message": f"delivery to channel '{name}' is dead: {error}",
            },
        )
