"""Who may do what: principals, the single table of permission rules, and the one function that decides.

Pure: no database. Callers look up the principal's organization role and project role and ask
`is_allowed` / `require`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import InvalidInput, PermissionDenied


class Action(StrEnum):
    MODEL_READ = "model.read"
    MODEL_REGISTER = "model.register"
    PROMOTE_STAGING = "model.promote.staging"
    PROMOTE_PRODUCTION = "model.promote.production"  # also any move out of production
    ARCHIVE = "model.archive"
    FORCE_PROMOTION = "model.promote.force"
    ROLLOUT_DEVELOPMENT = "deployment.rollout.development"
    ROLLOUT_STAGING = "deployment.rollout.staging"
    ROLLOUT_PRODUCTION = "deployment.rollout.production"
    ROLLBACK = "deployment.rollback"
    DRIFT_RUN = "drift.run"
    RETENTION_RUN = "retention.run"
    CHANNEL_MANAGE = "channel.manage"
    API_KEY_MANAGE = "api_key.manage"
    MEMBER_MANAGE = "member.manage"
    ALERT_MANAGE = "alert.manage"  # acknowledge, resolve


@dataclass(frozen=True)
class Rule:
    org_roles: frozenset[str]  # organization roles allowed everywhere in the organization
    project_roles: frozenset[str]  # project roles allowed within their project
    scope: str  # API-key scope that covers the action


def _rule(org: str, project: str, scope: str) -> Rule:
    return Rule(frozenset(org.split()), frozenset(project.split()), scope)


# The permission table (mirrored in the README). Viewers read only; developers and contributors promote to
# staging and roll out to development/staging; production, rollback and retention need an organization
# admin or the project owner; forcing past gates needs an organization admin.
RULES: dict[Action, Rule] = {
    Action.MODEL_READ: _rule("admin developer viewer", "owner contributor viewer", "models:read"),
    Action.MODEL_REGISTER: _rule("admin developer", "owner contributor", "models:register"),
    Action.PROMOTE_STAGING: _rule("admin developer", "owner contributor", "models:promote:staging"),
    Action.PROMOTE_PRODUCTION: _rule("admin", "owner", "models:promote:production"),
    Action.ARCHIVE: _rule("admin developer", "owner contributor", "models:promote:archived"),
    Action.FORCE_PROMOTION: _rule("admin", "", "models:promote:force"),
    Action.ROLLOUT_DEVELOPMENT: _rule("admin developer", "owner contributor", "deployments:rollout:development"),
    Action.ROLLOUT_STAGING: _rule("admin developer", "owner contributor", "deployments:rollout:staging"),
    Action.ROLLOUT_PRODUCTION: _rule("admin", "owner", "deployments:rollout:production"),
    Action.ROLLBACK: _rule("admin", "owner", "deployments:rollback"),
    Action.DRIFT_RUN: _rule("admin developer", "owner contributor", "drift:run"),
    Action.RETENTION_RUN: _rule("admin", "", "retention:run"),
    Action.CHANNEL_MANAGE: _rule("admin", "", "channels:manage"),
    Action.API_KEY_MANAGE: _rule("admin", "", "api_keys:manage"),
    Action.MEMBER_MANAGE: _rule("admin", "", "members:manage"),
    Action.ALERT_MANAGE: _rule("admin developer", "owner contributor", "alerts:manage"),
}

# Scopes a key may be given; a scope also covers every scope it prefixes (`models:promote` covers
# `models:promote:staging`), and `*` covers everything.
KNOWN_SCOPES = frozenset(
    {"*"}
    | {rule.scope for rule in RULES.values()}
    | {":".join(rule.scope.split(":")[:n]) for rule in RULES.values() for n in (1, 2)}
)


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user (maybe through an API key) in one organization, or the system."""

    organization_id: uuid.UUID
    organization_slug: str
    user_id: uuid.UUID | None = None
    email: str | None = None
    org_role: str | None = None
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None  # None: not restricted by a key
    is_system: bool = False
    project_roles: dict[uuid.UUID, str] = field(default_factory=dict, compare=False, hash=False)
    # a deployment run's claimed `actor`: recorded in audit details as "requested by", never verified
    requested_by: str | None = field(default=None, compare=False)

    @property
    def display(self) -> str:
        if self.is_system:
            return "system"
        via = f" via API key {self.api_key_id}" if self.api_key_id else ""
        return f"{self.email}{via}"


def subscription_active(status: str | None) -> bool:
    """Whether an organization's subscription allows work: on-demand operations and scheduled runs alike."""
    return status in (None, "active")


def system_principal(organization_id: uuid.UUID, organization_slug: str) -> Principal:
    """Scheduled flows act as the system: allowed everything, audited with no user."""
    return Principal(organization_id=organization_id, organization_slug=organization_slug, is_system=True)


def scope_covers(granted: frozenset[str], needed: str) -> bool:
    """Whether any granted scope equals `needed` or is a `:`-prefix of it (or is `*`)."""
    return any(g == "*" or needed == g or needed.startswith(g + ":") for g in granted)


def is_allowed(principal: Principal, action: Action, project_id: uuid.UUID | None = None) -> bool:
    """May `principal` do `action` (on the project `project_id`, when the action concerns one)?"""
    if principal.is_system:
        return True
    rule = RULES[action]
    project_role = principal.project_roles.get(project_id) if project_id else None
    by_role = principal.org_role in rule.org_roles or (project_role is not None and project_role in rule.project_roles)
    if not by_role:
        return False
    return principal.scopes is None or scope_covers(principal.scopes, rule.scope)


def require(principal: Principal, action: Action, project_id: uuid.UUID | None = None, *, what: str = "") -> None:
    """Raise `PermissionDenied` with one clear line unless `is_allowed`."""
    if is_allowed(principal, action, project_id):
        return
    rule = RULES[action]
    target = f" on {what}" if what else ""
    if principal.scopes is not None and (
        principal.org_role in rule.org_roles or principal.project_roles.get(project_id) in rule.project_roles
    ):
        raise PermissionDenied(f"API key lacks scope '{rule.scope}' needed for {action.value}{target}")
    project_role = principal.project_roles.get(project_id) if project_id else None
    roles = f"organization role '{principal.org_role}'" + (f", project role '{project_role}'" if project_role else "")
    raise PermissionDenied(f"{principal.display} ({roles}) may not {action.value}{target}")


def validate_scopes(scopes: list[str]) -> frozenset[str]:
    """The scopes a new key asks for, each checked against `KNOWN_SCOPES`."""
    unknown = sorted(s for s in scopes if s not in KNOWN_SCOPES)
    if unknown:
        raise InvalidInput(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_SCOPES))}")
    if not scopes:
        raise InvalidInput("an API key needs at least one --scope")
    return frozenset(scopes)
