"""SQL of notification dispatch: fan-out of outbox events into deliveries, claims, outcomes, rules, alerts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# an alert id in an event's payload, read without failing on a malformed one (other services write events too)
_ALERT_ID = (
    "CASE WHEN e.payload->>'alert_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "
    "THEN (e.payload->>'alert_id')::uuid END"
)


@dataclass(frozen=True)
class EventRow:
    id: uuid.UUID
    trigger_type: str
    event_type: str
    severity: str
    payload: dict[str, Any]
    created_at: datetime
    project_id: uuid.UUID | None
    deployment_id: uuid.UUID | None
    environment: str | None
    alert_id: uuid.UUID | None
    alert_type: str | None
    alert_status: str | None


def claim_undispatched_events(*, session: Session, limit: int) -> list[EventRow]:
    """Lock up to `limit` events not yet fanned out (oldest first), skipping those another run holds."""
    rows = session.execute(
        text(
            f"""
            SELECT e.id, e.trigger_type, e.event_type, e.severity, e.payload, e.created_at,
                   COALESCE(e.project_id, d.project_id) AS project_id, e.deployment_id, d.environment,
                   a.id AS alert_id, a.alert_type, a.status AS alert_status
            FROM (SELECT * FROM notification_events WHERE dispatched_at IS NULL ORDER BY created_at LIMIT :limit
                  FOR UPDATE SKIP LOCKED) e
            LEFT JOIN deployments d ON d.id = e.deployment_id
            LEFT JOIN alerts a ON a.id = {_ALERT_ID}
            ORDER BY e.created_at
            """
        ),
        {"limit": limit},
    ).mappings()
    return [EventRow(**r) for r in rows]


def active_rules(*, session: Session) -> list[dict[str, Any]]:
    """Active rules whose channel is live and active."""
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT r.id, r.channel_id, r.trigger_type, r.project_id, r.deployment_id, r.conditions "
                "FROM notification_rules r JOIN notification_channels c ON c.id = r.channel_id "
                "WHERE r.is_active IS NOT FALSE AND c.is_active IS NOT FALSE AND c.deleted_at IS NULL"
            )
        ).mappings()
    ]


def lock_alerts(*, session: Session, alert_ids: Sequence[uuid.UUID]) -> None:
    """Serialise fan-outs touching the same alerts (repeat interval and resolution are read, then written)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(a::text, 10)) FROM unnest(CAST(:ids AS uuid[])) a"),
        {"ids": sorted(alert_ids, key=str)},
    )


def alert_states(*, session: Session, alert_ids: Sequence[uuid.UUID]) -> dict[tuple[uuid.UUID, uuid.UUID], Any]:
    rows = session.execute(
        text(
            "SELECT alert_id, channel_id, last_notified_at, resolution_notified_at FROM notification_alert_state "
            "WHERE alert_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": list(alert_ids)},
    )
    return {(r.alert_id, r.channel_id): r for r in rows}


def save_alert_states(
    *, session: Session, organization_id: uuid.UUID, notified: Sequence[tuple[uuid.UUID, uuid.UUID, bool]]
) -> None:
    """Record (alert, channel, is_resolution) notifications as of now."""
    if not notified:
        return
    session.execute(
        text(
            """
            INSERT INTO notification_alert_state (organization_id, alert_id, channel_id, last_notified_at,
                                                  resolution_notified_at)
            SELECT :org, a, c, CASE WHEN r THEN NULL ELSE now() END, CASE WHEN r THEN now() END
            FROM unnest(CAST(:a AS uuid[]), CAST(:c AS uuid[]), CAST(:r AS boolean[])) AS t(a, c, r)
            ON CONFLICT (alert_id, channel_id) DO UPDATE SET
                last_notified_at = COALESCE(EXCLUDED.last_notified_at, notification_alert_state.last_notified_at),
                resolution_notified_at = COALESCE(EXCLUDED.resolution_notified_at,
                                                  notification_alert_state.resolution_notified_at)
            """
        ),
        {
            "org": organization_id,
            "a": [n[0] for n in notified],
            "c": [n[1] for n in notified],
            "r": [n[2] for n in notified],
        },
    )


def insert_deliveries(*, session: Session, organization_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> int:
    """One pending delivery per (event, channel); an existing one is kept. Grouped rows (a `group_key`) join
    their channel's open group, or open one due at the first event's time plus its group wait."""
    if not rows:
        return 0
    return session.execute(
        text(
            """
            WITH v AS (
                SELECT * FROM unnest(CAST(:e AS uuid[]), CAST(:c AS uuid[]), CAST(:r AS uuid[]), CAST(:g AS text[]),
                                     CAST(:w AS float8[]), CAST(:t AS timestamptz[]))
                    AS v(event_id, channel_id, rule_id, group_key, wait_s, created_at)
            ), w AS (
                SELECT v.*, min(created_at) OVER (PARTITION BY channel_id, group_key) AS first_at,
                       min(wait_s) OVER (PARTITION BY channel_id, group_key) AS group_wait FROM v
            )
            INSERT INTO notification_deliveries (organization_id, event_id, channel_id, rule_id, group_key,
                                                 next_attempt_at)
            SELECT :org, event_id, channel_id, rule_id, group_key,
                   CASE WHEN group_key IS NULL THEN now() ELSE COALESCE(
                       (SELECT min(o.next_attempt_at) FROM notification_deliveries o
                        WHERE o.channel_id = w.channel_id AND o.group_key = w.group_key AND o.status = 'pending'
                          AND o.next_attempt_at > now()),
                       first_at + make_interval(secs => group_wait)) END
            FROM w
            ON CONFLICT (event_id, channel_id) DO NOTHING
            """
        ),
        {
            "org": organization_id,
            "e": [r["event_id"] for r in rows],
            "c": [r["channel_id"] for r in rows],
            "r": [r["rule_id"] for r in rows],
            "g": [r["group_key"] for r in rows],
            "w": [r["group_wait"] for r in rows],
            "t": [r["created_at"] for r in rows],
        },
    ).rowcount


def mark_dispatched(*, session: Session, event_ids: Sequence[uuid.UUID]) -> None:
    session.execute(
        text("UPDATE notification_events SET dispatched_at = now() WHERE id = ANY(CAST(:ids AS uuid[]))"),
        {"ids": list(event_ids)},
    )


_DUE = (
    "((d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()) "
    "OR (d.status = 'sending' AND d.claim_expires_at <= now()))"
)


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    event_id: uuid.UUID
    channel_id: uuid.UUID
    group_key: str | None
    attempts: int
    event_type: str
    dead_letter_of: str | None  # a dead-letter event's channel: its own death is not reported again


def claim_due_deliveries(*, session: Session, token: uuid.UUID, limit: int, claim_seconds: float) -> list[Claimed]:
    """Claim up to `limit` due deliveries (and the rest of their groups) for `claim_seconds`, skipping rows
    another dispatcher holds; a claim that expired (its dispatcher died) is due again. Counts the attempt."""
    rows = session.execute(
        text(
            f"""
            WITH due AS (
                SELECT d.id, d.channel_id, d.group_key FROM notification_deliveries d WHERE {_DUE}
                ORDER BY d.next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED
            ), members AS (
                SELECT d.id FROM notification_deliveries d
                JOIN (SELECT DISTINCT channel_id, group_key FROM due WHERE group_key IS NOT NULL) g
                  ON g.channel_id = d.channel_id AND g.group_key = d.group_key
                WHERE {_DUE} FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE notification_deliveries d
            SET status = 'sending', claim_token = :token, attempts = d.attempts + 1,
                claim_expires_at = now() + make_interval(secs => :claim)
            FROM notification_events e
            WHERE e.id = d.event_id AND d.id IN (SELECT id FROM due UNION SELECT id FROM members)
            RETURNING d.id, d.event_id, d.channel_id, d.group_key, d.attempts, e.event_type,
                      CASE WHEN e.event_type = 'notification.dead' THEN e.payload->>'channel_id' END
            """
        ),
        {"token": token, "limit": limit, "claim": claim_seconds},
    ).all()
    return [Claimed(*r) for r in rows]


def message_context(
    *, session: Session, event_ids: Sequence[uuid.UUID], channel_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, dict[str, Any]], dict[uuid.UUID, dict[str, Any]]]:
    """(event id -> what a message says about it, channel id -> name, type, configuration)."""
    events = session.execute(
        text(
            """
            SELECT e.id, e.trigger_type, e.event_type, e.severity, e.payload, e.created_at, o.slug AS organization,
                   p.slug AS project, d.name AS deployment, d.environment
            FROM notification_events e JOIN organizations o ON o.id = e.organization_id
            LEFT JOIN deployments d ON d.id = e.deployment_id
            LEFT JOIN projects p ON p.id = COALESCE(e.project_id, d.project_id)
            WHERE e.id = ANY(CAST(:ids AS uuid[]))
            """
        ),
        {"ids": list(event_ids)},
    ).mappings()
    channels = session.execute(
        text("SELECT id, name, type, configuration FROM notification_channels WHERE id = ANY(CAST(:ids AS uuid[]))"),
        {"ids": list(channel_ids)},
    ).mappings()
    return {r["id"]: dict(r) for r in events}, {r["id"]: dict(r) for r in channels}


def record_outcomes(*, session: Session, token: uuid.UUID, outcomes: Sequence[dict[str, Any]]) -> int:
    """Write each delivery's outcome, only where this dispatcher still holds the claim; returns rows written."""
    if not outcomes:
        return 0
    return session.execute(
        text(
            """
            UPDATE notification_deliveries d
            SET status = v.status, next_attempt_at = COALESCE(v.next_at, d.next_attempt_at), last_error = v.err,
                response_code = v.code, delivered_at = CASE WHEN v.status = 'delivered' THEN now() END,
                claim_token = NULL, claim_expires_at = NULL
            FROM unnest(CAST(:ids AS uuid[]), CAST(:status AS text[]), CAST(:next_at AS timestamptz[]),
                        CAST(:err AS text[]), CAST(:code AS int[])) AS v(id, status, next_at, err, code)
            WHERE d.id = v.id AND d.claim_token = :token
            """
        ),
        {
            "token": token,
            "ids": [o["id"] for o in outcomes],
            "status": [o["status"] for o in outcomes],
            "next_at": [o["next_attempt_at"] for o in outcomes],
            "err": [o["last_error"] for o in outcomes],
            "code": [o["response_code"] for o in outcomes],
        },
    ).rowcount


def open_channel_alert(
    *, session: Session, organization_id: uuid.UUID, channel_id: uuid.UUID, title: str, message: str
) -> tuple[uuid.UUID, bool]:
    """The channel's one unresolved `custom` alert (opened now when there is none): (alert id, opened now)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:c, 11))"), {"c": str(channel_id)})
    existing = session.execute(
        text("SELECT id FROM alerts WHERE alert_type = 'custom' AND status <> 'resolved' AND title = :t LIMIT 1"),
        {"t": title},
    ).scalar()
    if existing:
        return existing, False
    alert_id = session.execute(
        text(
            "INSERT INTO alerts (organization_id, alert_type, severity, title, message) "
            "VALUES (:o, 'custom', 'high', :t, :m) RETURNING id"
        ),
        {"o": organization_id, "t": title, "m": message},
    ).scalar_one()
    return alert_id, True


# --- rules, deliveries and alerts for `mlops rules|deliveries|alerts` ----------------------------------------


def channel_by_name(*, session: Session, name: str) -> uuid.UUID | None:
    return session.execute(
        text("SELECT id FROM notification_channels WHERE name = :n AND deleted_at IS NULL"), {"n": name}
    ).scalar()


def project_by_slug(*, session: Session, slug: str) -> uuid.UUID | None:
    return session.execute(text("SELECT id FROM projects WHERE slug = :s AND deleted_at IS NULL"), {"s": slug}).scalar()


def deployment_by_name(*, session: Session, project_id: uuid.UUID, name: str, environment: str) -> uuid.UUID | None:
    return session.execute(
        text(
            "SELECT id FROM deployments WHERE project_id = :p AND name = :n AND environment = :e AND deleted_at IS NULL"
        ),
        {"p": project_id, "n": name, "e": environment},
    ).scalar()


def insert_rule(*, session: Session, values: dict[str, Any]) -> uuid.UUID:
    return session.execute(
        text(
            "INSERT INTO notification_rules (organization_id, project_id, deployment_id, channel_id, trigger_type, "
            "conditions, created_by) VALUES (:organization_id, :project_id, :deployment_id, :channel_id, "
            ":trigger_type, CAST(:conditions AS jsonb), :created_by) RETURNING id"
        ),
        values,
    ).scalar_one()


def list_rules(*, session: Session) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT r.id, r.trigger_type, c.name AS channel, p.slug AS project, d.name AS deployment, "
                "d.environment, r.conditions, r.is_active IS NOT FALSE AS active, r.created_at "
                "FROM notification_rules r JOIN notification_channels c ON c.id = r.channel_id "
                "LEFT JOIN projects p ON p.id = r.project_id LEFT JOIN deployments d ON d.id = r.deployment_id "
                "ORDER BY r.created_at, r.id"
            )
        ).mappings()
    ]


def list_deliveries(*, session: Session, status: str | None, limit: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT dl.id, dl.status, dl.attempts, dl.next_attempt_at, dl.response_code, dl.last_error, "
                "dl.delivered_at, dl.updated_at, c.name AS channel, e.event_type, e.id AS event_id "
                "FROM notification_deliveries dl JOIN notification_channels c ON c.id = dl.channel_id "
                "JOIN notification_events e ON e.id = dl.event_id "
                "WHERE (CAST(:status AS text) IS NULL OR dl.status = :status) "
                "ORDER BY dl.updated_at DESC, dl.id LIMIT :limit"
            ),
            {"status": status, "limit": limit},
        ).mappings()
    ]


def requeue_delivery(*, session: Session, delivery_id: uuid.UUID) -> str | None:
    """Make a dead or failed delivery due now with a fresh set of attempts; its previous status, or None when
    it does not exist. A delivered or claimed one is left alone (its status is returned)."""
    status = session.execute(
        text("SELECT status FROM notification_deliveries WHERE id = :id FOR UPDATE"), {"id": delivery_id}
    ).scalar()
    if status in ("dead", "failed"):
        session.execute(
            text(
                "UPDATE notification_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), "
                "claim_token = NULL, claim_expires_at = NULL WHERE id = :id"
            ),
            {"id": delivery_id},
        )
    return status


def list_alerts(*, session: Session, status: str | None, limit: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in session.execute(
            text(
                "SELECT a.id, a.alert_type, a.severity, a.status, a.title, a.triggered_at, a.acknowledged_at, "
                "a.resolved_at, d.name AS deployment, d.environment FROM alerts a "
                "LEFT JOIN deployments d ON d.id = a.deployment_id "
                "WHERE (CAST(:status AS text) IS NULL OR a.status = :status) "
                "ORDER BY a.triggered_at DESC, a.id LIMIT :limit"
            ),
            {"status": status, "limit": limit},
        ).mappings()
    ]


def lock_alert(*, session: Session, alert_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        session.execute(
            text(
                "SELECT a.id, a.status, a.title, a.severity, a.alert_type, a.deployment_id, d.project_id "
                "FROM alerts a LEFT JOIN deployments d ON d.id = a.deployment_id WHERE a.id = :id FOR UPDATE OF a"
            ),
            {"id": alert_id},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def set_alert_status(*, session: Session, alert_id: uuid.UUID, status: str, user_id: uuid.UUID | None) -> None:
    column = {"acknowledged": "acknowledged", "resolved": "resolved"}[status]
    session.execute(
        text(f"UPDATE alerts SET status = :s, {column}_at = now(), {column}_by = :u WHERE id = :id"),
        {"s": status, "u": user_id, "id": alert_id},
    )
