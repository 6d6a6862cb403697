"""What people do with notifications: add and list rules, inspect and retry deliveries, acknowledge and resolve
alerts. Every change is audited in its own transaction; a refusal is audited and writes nothing else."""

from __future__ import annotations

import json
import uuid
from typing import Any

from core.errors import Conflict, InvalidInput, NotFound
from core.vocabulary import AlertStatus, DeliveryStatus, Environment, TriggerType, one_of
from db.queries import notifications as q
from db.session import session_scope
from services.access import Action, Principal, require
from services.audit import authorize, record_audit
from services.outbox import emit_event
from tasks.notifications.rules import parse_conditions


def parse_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"'{value}' is not a {what} id") from None


def add_rule(
    principal: Principal,
    *,
    channel: str,
    trigger: str,
    project: str | None = None,
    deployment: str | None = None,
    environment: str | None = None,
    conditions: Any = None,
) -> dict[str, Any]:
    """Create a rule (organization admins): organization-wide, for a project, or for one deployment."""
    one_of(TriggerType, trigger, "--trigger")
    parse_conditions(conditions)  # malformed conditions are refused here, and skipped at dispatch
    if (deployment is None) != (environment is None):
        raise InvalidInput("--deployment and --env go together")
    if environment is not None:
        one_of(Environment, environment, "--env")
    authorize(
        principal,
        Action.CHANNEL_MANAGE,
        what=f"rules of channel '{channel}'",
        audit_action="notification_rule.create",
        resource_type="notification_rule",
    )
    with session_scope(principal.organization_id) as session:
        channel_id = q.channel_by_name(session=session, name=channel)
        if channel_id is None:
            raise NotFound(f"unknown channel '{channel}'")
        project_id = deployment_id = None
        if project is not None:
            project_id = q.project_by_slug(session=session, slug=project)
            if project_id is None:
                raise NotFound(f"unknown project '{project}'")
        if deployment is not None:
            if project_id is None:
                raise InvalidInput("--deployment needs its --project (or ORG/PROJECT/DEPLOYMENT)")
            deployment_id = q.deployment_by_name(
                session=session, project_id=project_id, name=deployment, environment=environment or ""
            )
            if deployment_id is None:
                raise NotFound(f"unknown deployment '{project}/{deployment}' ({environment})")
        values = {
            "organization_id": principal.organization_id,
            "project_id": project_id,
            "deployment_id": deployment_id,
            "channel_id": channel_id,
            "trigger_type": trigger,
            "conditions": json.dumps(conditions or {}),
            "created_by": principal.user_id,
        }
        if principal.user_id is None:
            raise InvalidInput("a rule is created by a user (--as or an API key of a user)")
        rule_id = q.insert_rule(session=session, values=values)
        details = {
            "channel": channel,
            "trigger": trigger,
            "project": project,
            "deployment": deployment,
            "environment": environment,
            "conditions": conditions or {},
        }
        record_audit(
            session,
            principal=principal,
            action="notification_rule.create",
            resource_type="notification_rule",
            resource_id=rule_id,
            details=details,
        )
    return {"id": str(rule_id), **details}


def list_rules(principal: Principal) -> list[dict[str, Any]]:
    require(principal, Action.MODEL_READ)
    with session_scope(principal.organization_id) as session:
        return q.list_rules(session=session)


def list_deliveries(principal: Principal, *, status: str | None, limit: int = 100) -> list[dict[str, Any]]:
    if status is not None:
        one_of(DeliveryStatus, status, "--status")
    require(principal, Action.MODEL_READ)
    with session_scope(principal.organization_id) as session:
        return q.list_deliveries(session=session, status=status, limit=limit)


def retry_delivery(principal: Principal, delivery: str) -> str:
    """Re-queue a dead or failed delivery now with fresh attempts (admins); returns its previous status."""
    delivery_id = parse_id(delivery, "delivery")
    authorize(
        principal,
        Action.CHANNEL_MANAGE,
        what=f"delivery {delivery_id}",
        audit_action="notification_delivery.retry",
        resource_type="notification_delivery",
        resource_id=delivery_id,
    )
    with session_scope(principal.organization_id) as session:
        previous = q.requeue_delivery(session=session, delivery_id=delivery_id)
        if previous is None:
            raise NotFound(f"unknown delivery {delivery_id}")
        if previous not in ("dead", "failed"):
            raise Conflict(f"delivery {delivery_id} is {previous}: only dead or failed deliveries are retried")
        record_audit(
            session,
            principal=principal,
            action="notification_delivery.retry",
            resource_type="notification_delivery",
            resource_id=delivery_id,
            details={"previous_status": previous},
        )
    return previous


def list_alerts(principal: Principal, *, status: str | None, limit: int = 100) -> list[dict[str, Any]]:
    if status is not None:
        one_of(AlertStatus, status, "--status")
    require(principal, Action.MODEL_READ)
    with session_scope(principal.organization_id) as session:
        return q.list_alerts(session=session, status=status, limit=limit)


def change_alert(principal: Principal, alert: str, to_status: str) -> str:
    """Acknowledge or resolve an alert (audited); resolving emits `alert.resolved`, sent once per channel.
    Returns `changed` or `unchanged` (already in that state)."""
    alert_id = parse_id(alert, "alert")
    verb = {"acknowledged": "acknowledge", "resolved": "resolve"}[to_status]
    with session_scope(principal.organization_id) as session:
        row = q.lock_alert(session=session, alert_id=alert_id)
    if row is None:
        raise NotFound(f"unknown alert {alert_id}")
    authorize(
        principal,
        Action.ALERT_MANAGE,
        row["project_id"],
        what=f"alert {alert_id}",
        audit_action=f"alert.{verb}",
        resource_type="alert",
        resource_id=alert_id,
    )
    with session_scope(principal.organization_id) as session:
        row = q.lock_alert(session=session, alert_id=alert_id)
        if row is None:
            raise NotFound(f"unknown alert {alert_id}")
        if row["status"] == to_status or (to_status == "acknowledged" and row["status"] == "resolved"):
            return "unchanged"
        q.set_alert_status(session=session, alert_id=alert_id, status=to_status, user_id=principal.user_id)
        record_audit(
            session,
            principal=principal,
            action=f"alert.{verb}",
            resource_type="alert",
            resource_id=alert_id,
            details={"from": row["status"], "to": to_status, "title": row["title"]},
        )
        if to_status == "resolved":
            emit_event(
                session,
                organization_id=principal.organization_id,
                trigger_type="alert",
                event_type="alert.resolved",
                severity="info",
                project_id=row["project_id"],
                deployment_id=row["deployment_id"],
                dedup_key=f"alert.resolved:{alert_id}",
                payload={
                    "alert_id": str(alert_id),
                    "alert_type": row["alert_type"],
                    "title": row["title"],
                    "message": f"resolved by {principal.display}: {row['title']}",
                },
            )
    return "changed"
