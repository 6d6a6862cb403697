"""Notification channels: add, list (redacted), test, and re-encrypt their secrets under the newest key."""

from __future__ import annotations

import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from core.errors import Conflict, InvalidInput, MlopsError, NotFound
from core.validation import check_text
from db.models import NotificationChannel
from db.queries import channels as q
from db.queries.notifications import channel_by_name
from db.session import session_scope, system_session
from services.access import Action, Principal, require
from services.audit import authorize, record_audit
from services.netguard import DestinationRefused, DestinationUnresolvable, check_host, check_url
from services.secrets import (
    Redacted,
    SecretBox,
    SecretError,
    restore_key_file,
    rotation_box,
    secret_box,
    write_key_file,
)
from services.senders import URL_FIELDS, redact_value, send_message, status_class, validate_channel_settings

CONFIG_VERSION = 1


@dataclass(frozen=True)
class ChannelView:
    id: uuid.UUID
    name: str
    type: str
    is_active: bool
    settings: dict[str, Any]  # public settings in clear, secret ones redacted


def seal(channel_type: str, settings: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The `configuration` JSON stored for a channel: public settings in clear, secret ones encrypted."""
    public, secret = validate_channel_settings(channel_type, settings)
    return {
        "version": CONFIG_VERSION,
        "public": public,
        "secret": box.encrypt(secret) if secret else None,
        "redacted": {name: redact_value(name, value) for name, value in secret.items()},
    }


def unseal(configuration: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The channel's full settings; secret values are `Redacted` strings (or dicts of them)."""
    settings = dict(configuration.get("public") or {})
    if configuration.get("secret"):
        for name, value in box.decrypt(configuration["secret"]).items():
            settings[name] = (
                {k: Redacted(v) for k, v in value.items()} if isinstance(value, dict) else Redacted(str(value))
            )
    return settings


def redacted(configuration: dict[str, Any]) -> dict[str, Any]:
    return {**(configuration.get("public") or {}), **(configuration.get("redacted") or {})}


def add_channel(principal: Principal, *, name: str, channel_type: str, settings: dict[str, Any]) -> ChannelView:
    """Create a channel (organization admins); Conflict when a live channel already has the name."""
    authorize(
        principal,
        Action.CHANNEL_MANAGE,
        what=f"channel '{name}'",
        audit_action="notification_channel.create",
        resource_type="notification_channel",
    )
    check_text(name, "--name", max_length=255)  # notification_channels.name
    configuration = seal(channel_type, settings, secret_box())
    for field_name in URL_FIELDS:
        if field_name in settings:
            # a name that does not resolve yet reaches nothing; it is checked again before every send
            with suppress(DestinationUnresolvable):
                check_url(str(settings[field_name]), what=f"{channel_type} channel")
    if channel_type == "email":
        with suppress(DestinationUnresolvable):
            check_host(str(settings["smtp_host"]), int(settings["smtp_port"]), what="email channel")
    with session_scope(principal.organization_id) as session:
        existing = channel_by_name(session=session, name=name)
        if existing:
            raise Conflict(f"a channel named '{name}' already exists in {principal.organization_slug}")
        channel = NotificationChannel(
            organization_id=principal.organization_id,
            name=name,
            type=channel_type,
            configuration=configuration,
            created_by=principal.user_id,
        )
        session.add(channel)
        session.flush()
        record_audit(
            session,
            principal=principal,
            action="notification_channel.create",
            resource_type="notification_channel",
            resource_id=channel.id,
            details={"name": name, "type": channel_type, "settings": redacted(configuration)},
        )
        return _view(channel)


def list_channels(principal: Principal) -> list[ChannelView]:
    """Every live channel of the organization, secrets redacted."""
    require(principal, Action.MODEL_READ)
    with session_scope(principal.organization_id) as session:
        return [_view(c) for c in q.live_channels(session=session)]


def test_channel(principal: Principal, *, name: str) -> ChannelView:
    """Send a test message through the channel now; audited. Raises DeliveryFailed ("failed: 4xx", "failed: no
    response"): only the outcome's class, so that a test cannot be used to probe what listens where."""
    authorize(
        principal,
        Action.CHANNEL_MANAGE,
        what=f"channel '{name}'",
        audit_action="notification_channel.test",
        resource_type="notification_channel",
    )
    with session_scope(principal.organization_id) as session:
        channel = _by_name(session, name)
        settings = unseal(channel.configuration, secret_box())
        view = _view(channel)
    outcome, refused = "delivered", None
    try:
        send_message(
            view.type,
            settings,
            title="mlops test message",
            text=f"Channel '{name}' of {principal.organization_slug} works.",
            data={"channel": name, "organization": principal.organization_slug, "test": True},
        )
    except DestinationRefused as exc:  # says why, naming the host the admin wrote
        outcome, refused = str(exc), exc
    except MlopsError as exc:  # anything the peer or the network did is reduced to its class
        outcome = f"failed: {status_class(exc)}"
    with session_scope(principal.organization_id) as session:
        record_audit(
            session,
            principal=principal,
            action="notification_channel.test",
            resource_type="notification_channel",
            resource_id=view.id,
            details={"name": name, "outcome": outcome},
        )
    if refused is not None:
        raise refused
    if outcome != "delivered":
        raise DeliveryFailed(f"test message through channel '{name}' {outcome}")
    return view


class DeliveryFailed(MlopsError):
    """A test message was not delivered; the message holds only the status class."""


def reencrypt_all(box: SecretBox | None = None) -> int:
    """Re-encrypt every channel secret of every organization under the newest key; returns how many.

    One transaction: when any secret cannot be decrypted, nothing is re-encrypted (SecretError names the
    channel, never the secret)."""
    # cross-organization by nature (every channel of every organization): the maintenance role
    with system_session() as session:
        return _reencrypt(session, box)


def rotate_key() -> int:
    """`mlops secrets rotate`: a new key first in the key file and every secret re-encrypted under it, all or
    nothing. The file is written inside the re-encryption's transaction, before its commit (a crash in between
    leaves the database under the old key, which the file still holds); if anything fails, the file is put
    back as it was."""
    box, path, previous = rotation_box()
    try:
        with system_session() as session:
            count = _reencrypt(session, box)
            write_key_file(path, box.keys)
    except BaseException:
        restore_key_file(path, previous)
        raise
    return count


def _reencrypt(session, box: SecretBox | None) -> int:
    channels = q.lock_live_channels(session=session)
    sealed = [c for c in channels if (c.configuration or {}).get("secret")]
    if not sealed:
        return 0
    box = box or secret_box()  # MissingSecretKey only where there are secrets to re-encrypt
    for channel in sealed:
        configuration = dict(channel.configuration)
        try:
            configuration["secret"] = box.rotate(configuration["secret"])
        except SecretError:
            raise SecretError(
                f"cannot re-encrypt the secrets of channel '{channel.name}': none of the configured keys "
                "(MLOPS_SECRET_KEY, or secret.key under MLOPS_HOME) decrypts them; nothing was changed"
            ) from None
        channel.configuration = configuration
    return len(sealed)


def set_channel_state(principal: Principal, *, name: str, state: str) -> tuple[ChannelView, bool]:
    """`disable`, `enable` or `remove` (soft delete: `deleted_at`) a channel (organization admins), audited;
    (the channel, whether anything changed). Dispatch skips disabled and removed channels; removing frees the
    name. Repeating a change changes nothing and writes nothing."""
    if state not in ("disable", "enable", "remove"):
        raise InvalidInput(f"unknown channel change '{state}'")
    authorize(
        principal,
        Action.CHANNEL_MANAGE,
        what=f"channel '{name}'",
        audit_action=f"notification_channel.{state}",
        resource_type="notification_channel",
    )
    with session_scope(principal.organization_id) as session:
        channel = _by_name(session, name, lock=True)
        if state == "remove":
            q.remove_channel(channel)
            changed = True
        else:
            active = state == "enable"
            changed = (channel.is_active is not False) != active
            channel.is_active = active
        if changed:
            session.flush()
            record_audit(
                session,
                principal=principal,
                action=f"notification_channel.{state}",
                resource_type="notification_channel",
                resource_id=channel.id,
                details={"name": channel.name, "type": channel.type},
            )
        return _view(channel), changed


def _by_name(session, name: str, *, lock: bool = False) -> NotificationChannel:
    channel = q.live_channel(session=session, name=name, lock=lock)
    if channel is None:
        raise NotFound(f"unknown channel '{name}'")
    return channel


def _view(channel: NotificationChannel) -> ChannelView:
    return ChannelView(
        id=channel.id,
        name=channel.name,
        type=channel.type,
        is_active=channel.is_active is not False,
        settings=redacted(channel.configuration),
    )
