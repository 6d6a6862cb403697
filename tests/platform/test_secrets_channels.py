"""Channel secrets: encrypted before they reach the database, redacted on screen, never logged; key rotation."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, pool, text

from core.errors import Conflict, InvalidInput, PermissionDenied, TransientError
from services.auth import resolve_principal
from services.secrets import SecretBox, SecretError, ensure_key_file, parse_keys, secret_box
from services.senders import DeliveryRefused, send_message
from tasks.notifications import channels
from tests.factories import Db

SECRET_TOKEN = "xoxb-super-secret-token-4242"


@pytest.fixture
def admin(tenants_db):
    return resolve_principal(organization="alpha", as_email="admin@alpha.example")


def stored_configuration(url: str, name: str) -> dict:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT configuration FROM notification_channels WHERE name = :n"), {"n": name}
        ).scalar_one()
    engine.dispose()
    return value


class TestSecretBox:
    def test_round_trip_and_rotation_keep_old_keys_readable(self):
        old, new = Fernet.generate_key(), Fernet.generate_key()
        token = SecretBox((old,)).encrypt({"url": "http://x"})
        rotated = SecretBox((new, old))
        assert rotated.decrypt(token) == {"url": "http://x"}
        fresh = rotated.rotate(token)
        assert SecretBox((new,)).decrypt(fresh) == {"url": "http://x"}

    def test_wrong_key_fails_without_revealing_anything(self):
        token = SecretBox((Fernet.generate_key(),)).encrypt({"password": "hunter2"})
        with pytest.raises(SecretError) as caught:
            SecretBox((Fernet.generate_key(),)).decrypt(token)
        assert "hunter2" not in str(caught.value) and token not in str(caught.value)

    def test_malformed_key_is_bad_input(self):
        with pytest.raises(InvalidInput, match="secret key #2"):
            parse_keys(f"{Fernet.generate_key().decode()},not-a-key")

    def test_embedded_default_key_file_is_private(self, monkeypatch, tmp_path):
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
        monkeypatch.setenv("MLOPS_SECRET_KEY", "")
        assert ensure_key_file() == tmp_path / "secret.key"
        assert ensure_key_file() is None  # made once
        box = secret_box()
        key_file = tmp_path / "secret.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert secret_box().keys == box.keys  # reused, not regenerated


class TestChannels:
    def test_secret_settings_are_encrypted_at_rest_and_redacted_on_screen(self, tenants_db, admin, http_peer):
        url, _, _ = tenants_db
        hook = f"{http_peer.url}/hooks/{SECRET_TOKEN}"
        view = channels.add_channel(
            admin,
            name="oncall",
            channel_type="webhook",
            settings={"url": hook, "signing_secret": "sign-me", "timeout_seconds": 3},
        )
        stored = stored_configuration(url, "oncall")
        assert SECRET_TOKEN not in str(stored) and "sign-me" not in str(stored)
        assert stored["public"] == {"timeout_seconds": 3}
        assert view.settings["url"] == f"{http_peer.url}/***"
        listed = channels.list_channels(admin)
        assert all(SECRET_TOKEN not in str(v.settings) for v in listed)

    def test_channel_test_delivers_a_signed_message(self, tenants_db, admin, http_peer):
        channels.add_channel(
            admin,
            name="oncall",
            channel_type="webhook",
            settings={"url": f"{http_peer.url}/hook?token={SECRET_TOKEN}", "signing_secret": "sign-me"},
        )
        channels.test_channel(admin, name="oncall")
        (request,) = http_peer.requests
        assert request.path == f"/hook?token={SECRET_TOKEN}"
        assert request.json()["data"]["test"] is True
        from services.senders import signature

        assert request.headers["X-Mlops-Signature"] == signature("sign-me", request.body)

    def test_slack_and_teams_bodies(self, tenants_db, admin, http_peer):
        channels.add_channel(admin, name="slack", channel_type="slack", settings={"webhook_url": f"{http_peer.url}/s"})
        channels.add_channel(admin, name="teams", channel_type="teams", settings={"webhook_url": f"{http_peer.url}/t"})
        channels.test_channel(admin, name="slack")
        channels.test_channel(admin, name="teams")
        assert "text" in http_peer.requests[0].json()
        assert http_peer.requests[1].json()["@type"] == "MessageCard"

    def test_email_channel_sends_through_smtp(self, tenants_db, admin, smtp_peer):
        channels.add_channel(
            admin,
            name="mail",
            channel_type="email",
            settings={
                "smtp_host": smtp_peer.host,
                "smtp_port": smtp_peer.port,
                "from_addr": "mlops@acme.example",
                "to_addrs": ["oncall@acme.example"],
                "password": "smtp-pass-123",
            },
        )
        channels.test_channel(admin, name="mail")
        (message,) = smtp_peer.messages
        assert message["To"] == "oncall@acme.example" and message["Subject"] == "mlops test message"

    @pytest.mark.parametrize(
        ("status", "error", "status_class"),
        [
            (500, TransientError, "5xx"),
            (429, TransientError, "4xx"),
            (404, DeliveryRefused, "4xx"),
            (302, DeliveryRefused, "3xx"),
        ],
    )
    def test_failing_peer_errors_never_show_the_secret(
        self, tenants_db, admin, http_peer, caplog, status, error, status_class
    ):
        http_peer.respond(status, headers={"Retry-After": "7", "Location": "http://169.254.169.254/"})
        channels.add_channel(
            admin, name="oncall", channel_type="webhook", settings={"url": f"{http_peer.url}/{SECRET_TOKEN}"}
        )
        caplog.set_level(logging.DEBUG)
        with pytest.raises(channels.DeliveryFailed) as caught:
            channels.test_channel(admin, name="oncall")
        assert str(caught.value) == f"test message through channel 'oncall' failed: {status_class}"
        with pytest.raises(error) as direct:  # what notification dispatch sees: retry or not
            send_message("webhook", {"url": f"{http_peer.url}/{SECRET_TOKEN}"}, title="t", text="t", data={})
        assert SECRET_TOKEN not in str(direct.value) and SECRET_TOKEN not in repr(direct.value.__cause__)
        assert SECRET_TOKEN not in caplog.text
        assert len(http_peer.requests) == 2  # a redirect is never followed
        if status == 429:
            assert "retry after 7s" in str(direct.value)

    def test_stalled_peer_is_no_response(self, tenants_db, admin, http_peer):
        http_peer.respond(200, delay=3)
        channels.add_channel(
            admin,
            name="oncall",
            channel_type="webhook",
            settings={"url": f"{http_peer.url}/{SECRET_TOKEN}", "timeout_seconds": 0.5},
        )
        with pytest.raises(channels.DeliveryFailed, match="failed: no response$"):
            channels.test_channel(admin, name="oncall")

    def test_unreachable_peer_is_no_response_and_transient(self, tenants_db, admin):
        channels.add_channel(
            admin, name="oncall", channel_type="webhook", settings={"url": f"http://127.0.0.1:9/{SECRET_TOKEN}"}
        )
        with pytest.raises(channels.DeliveryFailed, match="failed: no response$"):
            channels.test_channel(admin, name="oncall")
        with pytest.raises(TransientError) as caught:
            send_message("webhook", {"url": f"http://127.0.0.1:9/{SECRET_TOKEN}"}, title="t", text="t", data={})
        assert SECRET_TOKEN not in str(caught.value)

    def test_test_attempts_are_audited_without_secrets(self, tenants_db, admin, http_peer):
        url, _, _ = tenants_db
        channels.add_channel(
            admin, name="oncall", channel_type="webhook", settings={"url": f"{http_peer.url}/{SECRET_TOKEN}"}
        )
        channels.test_channel(admin, name="oncall")
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            audit = conn.execute(
                text("SELECT action, details::text FROM audit_logs WHERE action LIKE 'notification_channel.%'")
            ).all()
        engine.dispose()
        assert [a.action for a in audit] == ["notification_channel.create", "notification_channel.test"]
        assert all(SECRET_TOKEN not in a.details for a in audit)

    @pytest.mark.parametrize(
        ("channel_type", "settings", "message"),
        [
            ("pager", {}, "unknown channel type"),
            ("webhook", {}, "missing setting(s) url"),
            ("webhook", {"url": "ftp://x"}, "must be an http(s) URL"),
            ("email", {"smtp_host": "h", "smtp_port": 25, "from_addr": "a@b", "to_addrs": ["nope"]}, "to_addrs"),
            ("slack", {"webhook_url": "http://x", "colour": "red"}, "unknown setting(s) colour"),
        ],
    )
    def test_bad_settings_are_refused_and_nothing_is_written(self, tenants_db, admin, channel_type, settings, message):
        url, _, _ = tenants_db
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
            channels.add_channel(admin, name="bad", channel_type=channel_type, settings=settings)
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM notification_channels WHERE name = 'bad'")).scalar() == 0
        engine.dispose()

    def test_duplicate_name_conflicts(self, tenants_db, admin):
        channels.add_channel(
            admin, name="oncall", channel_type="teams", settings={"webhook_url": "http://127.0.0.1:9/x"}
        )
        with pytest.raises(Conflict):
            channels.add_channel(
                admin, name="oncall", channel_type="teams", settings={"webhook_url": "http://127.0.0.1:9/y"}
            )

    def test_only_admins_manage_channels(self, tenants_db):
        developer = resolve_principal(organization="alpha", as_email="developer@alpha.example")
        with pytest.raises(PermissionDenied):
            channels.add_channel(
                developer, name="oncall", channel_type="teams", settings={"webhook_url": "http://x.example/"}
            )

    def test_reencrypt_moves_every_secret_to_the_newest_key(self, tenants_db, admin, monkeypatch, http_peer):
        url, _, _ = tenants_db
        old = Fernet.generate_key().decode()
        monkeypatch.setenv("MLOPS_SECRET_KEY", old)
        channels.add_channel(
            admin, name="oncall", channel_type="webhook", settings={"url": f"{http_peer.url}/{SECRET_TOKEN}"}
        )
        before = stored_configuration(url, "oncall")["secret"]
        new = Fernet.generate_key().decode()
        monkeypatch.setenv("MLOPS_SECRET_KEY", f"{new},{old}")
        assert channels.reencrypt_all() >= 1
        after = stored_configuration(url, "oncall")["secret"]
        assert after != before
        monkeypatch.setenv("MLOPS_SECRET_KEY", new)  # the old key is no longer needed
        channels.test_channel(admin, name="oncall")
        assert len(http_peer.requests) == 1


def test_key_file_is_not_world_readable_even_with_a_permissive_umask(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_SECRET_KEY", "")
    old = os.umask(0)
    try:
        ensure_key_file()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


class TestChannelState:
    def test_disable_enable_remove_are_audited_once_and_refused_to_a_developer(self, tenants_db, admin, http_peer):
        from core.errors import NotFound

        url, _, _ = tenants_db
        channels.add_channel(admin, name="pager", channel_type="webhook", settings={"url": f"{http_peer.url}/pager"})
        view, changed = channels.set_channel_state(admin, name="pager", state="disable")
        assert changed and not view.is_active
        assert channels.set_channel_state(admin, name="pager", state="disable")[1] is False  # nothing to do
        assert channels.set_channel_state(admin, name="pager", state="enable")[0].is_active
        developer = resolve_principal(organization="alpha", as_email="developer@alpha.example")
        with pytest.raises(PermissionDenied):
            channels.set_channel_state(developer, name="pager", state="remove")
        channels.set_channel_state(admin, name="pager", state="remove")
        assert [c.name for c in channels.list_channels(admin) if c.name == "pager"] == []
        with pytest.raises(NotFound):
            channels.set_channel_state(admin, name="pager", state="enable")
        db = Db(url)
        actions = db.all(
            "SELECT action FROM audit_logs WHERE resource_type = 'notification_channel' "
            "AND action LIKE 'notification_channel.%' ORDER BY created_at, action"
        )
        db.close()
        assert [a["action"] for a in actions].count("notification_channel.disable") == 1
        assert {a["action"] for a in actions} >= {
            "notification_channel.enable",
            "notification_channel.remove",
            "notification_channel.remove.denied",
        }


def test_the_channel_help_documents_every_field_and_a_refusal_names_the_valid_ones():
    from mlops.cli.channels import channels_add
    from services.senders import CHANNEL_FIELDS, describe_fields, validate_channel_settings

    doc = channels_add.__doc__ or ""
    for channel_type, fields in CHANNEL_FIELDS.items():
        line = next(line for line in doc.splitlines() if line.strip().startswith(f"{channel_type}:"))
        for name in fields.allowed:
            assert name in line, (channel_type, name)
        for name in fields.secret:
            assert f"{name}" in line and "(secret" in line.split(name, 1)[1][:10], (channel_type, name)
    with pytest.raises(InvalidInput) as refused:
        validate_channel_settings("slack", {"webhook_url": "https://hooks.slack.example/x", "colour": "red"})
    assert str(refused.value).endswith(f"valid: {describe_fields('slack')}")
    assert describe_fields("slack") == "channel, timeout_seconds, webhook_url (required, secret)"
