"""API keys for CI and other programs: made once, stored only as a hash, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.validation import check_text
from db.models import ApiKey
from db.queries import apikeys as q
from db.queries.tenancy import membership_role, project_roles, user_by_email
from db.session import session_scope, system_session
from services.access import Action, Principal, scope_covers, validate_scopes
from services.audit import authorize, record_audit, record_refusal

KEY_MARKER = "mlk_"
PREFIX_LENGTH = 12  # "mlk_" + 8 characters: enough to tell keys apart on screen, useless to an attacker
# anything longer than a display prefix that starts like a key: a pasted key, never to be shown again
_PASTED_KEY = re.compile(re.escape(KEY_MARKER) + r"[A-Za-z0-9_\-]{" + str(PREFIX_LENGTH - len(KEY_MARKER) + 1) + ",}")


def redact_keys(text: str) -> str:
    """`text` with every API key in it cut to its display prefix (`mlk_AbCdEfGh…`): for error messages that
    quote what a user typed, which may be a key pasted into the wrong place."""
    return _PASTED_KEY.sub(lambda m: m.group(0)[:PREFIX_LENGTH] + "…", text)


def looks_like_key(text: str) -> bool:
    return bool(_PASTED_KEY.search(text))


@dataclass(frozen=True)
class ApiKeyInfo:
    id: uuid.UUID
    name: str
    key_prefix: str
    user_email: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    last_used_at: datetime | None
    is_active: bool
    state: str = "active"  # active, revoked or expired


def generate_key() -> tuple[str, str, str]:
    """A new key as (plaintext, display prefix, stored hash). The plaintext is shown once and never stored."""
    plaintext = KEY_MARKER + secrets.token_urlsafe(32)
    return plaintext, plaintext[:PREFIX_LENGTH], hash_key(plaintext)


def hash_key(plaintext: str) -> str:
    """SHA-256 of the key: keys are 256-bit random, so a fast hash is as strong as a slow one here."""
    return "sha256:" + hashlib.sha256(plaintext.encode()).hexdigest()


def key_refusal(
    *, is_active: bool | None, expires_at: datetime | None, deleted_at: datetime | None, now: datetime
) -> str | None:
    """Why a stored key may not be used now, or None when it may."""
    if deleted_at is not None:
        return "has been deleted"
    if is_active is False:
        return "has been revoked"
    if expires_at is not None and expires_at <= now:
        return f"expired at {expires_at.isoformat(timespec='seconds')}"
    return None


def user_refusal(*, user, is_member: bool, organization: str) -> str | None:
    """Why a key's user may not act now: a key works only while its user is active, not deleted and still a
    member of the key's organization."""
    if user is None or user.deleted_at is not None:
        return "belongs to a deleted user"
    if user.is_active is False:
        return "belongs to a deactivated user"
    if not is_member:
        return f"belongs to a user no longer in {organization}"
    return None


def authenticate(plaintext: str) -> Principal:
    """The principal an API key acts as; PermissionDenied for an unknown, revoked or expired key.

    Looked up by hash (authentication precedes knowing the organization, so this reads as the maintenance
    role: `system_session`),
    compared in constant time; `last_used_at` is updated on success, and a refused known key is audited.
    """
    if not plaintext.startswith(KEY_MARKER):
        raise PermissionDenied("invalid API key")
    digest = hash_key(plaintext)
    with system_session() as session:
        found = q.key_by_hash(session=session, digest=digest)
        if found is None or not hmac.compare_digest(found[0].key_hash, digest):
            raise PermissionDenied("invalid API key")
        key, slug = found
        now = q.database_now(session=session)
        role = membership_role(session=session, organization_id=key.organization_id, user_id=key.user_id)
        user = q.key_user(session=session, user_id=key.user_id)
        refusal = key_refusal(is_active=key.is_active, expires_at=key.expires_at, deleted_at=key.deleted_at, now=now)
        if refusal is None:
            refusal = user_refusal(user=user, is_member=role is not None, organization=slug)
        principal = Principal(
            organization_id=key.organization_id,
            organization_slug=slug,
            # a refusal is audited in the key's organization: attribute it to the user only while a member
            user_id=key.user_id if role is not None else None,
            email=user.email if user else None,
            org_role=role,
            api_key_id=key.id,
            scopes=frozenset((key.permissions or {}).get("scopes", [])),
            project_roles=project_roles(session=session, organization_id=key.organization_id, user_id=key.user_id),
        )
        if refusal is None:
            q.touch_key(session=session, key_id=key.id, at=now)
    if refusal is not None:
        message = f"API key '{key.name}' ({key.key_prefix}…) {refusal}"
        record_refusal(principal, action="api_key.use", resource_type="api_key", resource_id=key.id, reason=message)
        raise PermissionDenied(message)
    return principal


def create_key(
    principal: Principal, *, user_email: str, name: str, scopes: list[str], expires_at: datetime | None = None
) -> tuple[str, ApiKeyInfo]:
    """Create a key for `user_email`; returns (plaintext shown once, info). Admins make keys for anyone in the
    organization, anyone else only for themselves; a key never grants more than its user's role."""
    granted = validate_scopes(scopes)
    check_text(name, "--name", max_length=255)  # api_keys.name
    if looks_like_key(user_email) or "@" not in user_email:
        raise InvalidInput(f"--user expects the e-mail of a member, not '{redact_keys(user_email)}'")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput(
            f"--expires {expires_at.isoformat(timespec='seconds')} is in the past: the key would never work"
        )
    if principal.email != user_email:
        authorize(
            principal,
            Action.API_KEY_MANAGE,
            what=f"keys of {user_email}",
            audit_action="api_key.create",
            resource_type="api_key",
        )
    if principal.scopes is not None:
        raise PermissionDenied("API keys cannot create API keys; use --as EMAIL")
    plaintext, prefix, digest = generate_key()
    with session_scope(principal.organization_id) as session:
        user_id = user_by_email(session=session, email=user_email).id
        # a key acts as its user: only for a member who joined (accepted an invitation), never for a user of
        # another organization who did not consent (the api_keys policy checks the same in the database)
        if membership_role(session=session, organization_id=principal.organization_id, user_id=user_id) is None:
            raise PermissionDenied(f"{user_email} is not a member of {principal.organization_slug}")
        key = ApiKey(
            organization_id=principal.organization_id,
            user_id=user_id,
            name=name,
            key_hash=digest,
            key_prefix=prefix,
            permissions={"scopes": sorted(granted)},
            expires_at=expires_at,
        )
        session.add(key)
        session.flush()
        record_audit(
            session,
            principal=principal,
            action="api_key.create",
            resource_type="api_key",
            resource_id=key.id,
            details={"name": name, "key_prefix": prefix, "user": user_email, "scopes": sorted(granted)},
        )
        info = _info(key, user_email)
    return plaintext, info


def list_keys(principal: Principal) -> list[ApiKeyInfo]:
    """The organization's live keys (admins; an admin's API key only with `api_keys:manage`) or the principal's
    own, each with its state (an expired key is
    shown as expired, not active)."""
    with session_scope(principal.organization_id) as session:
        now = q.database_now(session=session)
        # every key of the organization for an admin, and for an API key only with api_keys:manage
        sees_all = principal.org_role == "admin" and (
            principal.scopes is None or scope_covers(principal.scopes, "api_keys:manage")
        )
        keys = q.live_keys(session=session, user_id=None if sees_all else principal.user_id)
        return [_info(key, email, now) for key, email in keys]


def revoke_key(principal: Principal, *, key_prefix: str) -> ApiKeyInfo:
    """Deactivate the key whose display prefix is `key_prefix` (a whole key pasted instead is cut to its
    prefix, never echoed). Admins revoke any key, a user their own; an API key needs `api_keys:manage` for
    any key but itself, whoever its user is."""
    key_prefix = key_prefix.strip()
    if looks_like_key(key_prefix):
        key_prefix = key_prefix[:PREFIX_LENGTH]
    if not key_prefix.startswith(KEY_MARKER) or len(key_prefix) != PREFIX_LENGTH:
        raise InvalidInput(f"'{redact_keys(key_prefix)}' is not a key prefix (mlk_ and 8 characters, from `keys list`)")
    with session_scope(principal.organization_id) as session:
        row = q.key_by_prefix_for_update(session=session, key_prefix=key_prefix)
        if row is None:
            raise NotFound(f"no API key with prefix '{key_prefix}' in {principal.organization_slug}")
        key, email = row
        if key.user_id != principal.user_id:
            authorize(
                principal,
                Action.API_KEY_MANAGE,
                what=f"keys of {email}",
                audit_action="api_key.revoke",
                resource_type="api_key",
                resource_id=key.id,
            )
        elif (
            principal.scopes is not None
            and key.id != principal.api_key_id
            and not scope_covers(principal.scopes, "api_keys:manage")
        ):
            # a read-only CI key must not be able to switch off its user's other keys
            message = f"API key lacks scope 'api_keys:manage' needed to revoke key {key.key_prefix}…"
            record_refusal(
                principal, action="api_key.revoke", resource_type="api_key", resource_id=key.id, reason=message
            )
            raise PermissionDenied(message)
        key.is_active = False
        record_audit(
            session,
            principal=principal,
            action="api_key.revoke",
            resource_type="api_key",
            resource_id=key.id,
            details={"name": key.name, "key_prefix": key.key_prefix, "user": email},
        )
        session.flush()
        return _info(key, email)


def _info(key: ApiKey, email: str, now: datetime | None = None) -> ApiKeyInfo:
    refusal = key_refusal(
        is_active=key.is_active, expires_at=key.expires_at, deleted_at=key.deleted_at, now=now or datetime.now(UTC)
    )
    return ApiKeyInfo(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        user_email=email,
        scopes=tuple((key.permissions or {}).get("scopes", [])),
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        is_active=key.is_active is not False,
        state="active" if refusal is None else "expired" if refusal.startswith("expired") else "revoked",
    )
