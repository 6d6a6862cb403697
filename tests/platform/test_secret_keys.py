"""The channel secret key: never made as a side effect, missing keys named in one line, rotation all or nothing."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, pool, text

from services.auth import resolve_principal
from services.secrets import MissingSecretKey, SecretError, ensure_key_file, secret_box
from tasks.notifications import channels
from tests.fixtures.cli import mlops, one_line_error


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_SECRET_KEY", "")
    return tmp_path


def _configurations(url: str) -> dict[str, dict]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, configuration FROM notification_channels ORDER BY name")).all()
    engine.dispose()
    return {name: configuration for name, configuration in rows}


class TestNoSilentKey:
    def test_reading_the_key_never_creates_one(self, home):
        with pytest.raises(MissingSecretKey) as caught:
            secret_box()
        message = str(caught.value)
        assert "MLOPS_SECRET_KEY" in message and "MLOPS_HOME" in message and "\n" not in message
        assert not (home / "secret.key").exists()

    def test_a_channel_command_without_a_key_is_one_line_naming_both_settings(self, seeded, tmp_path):
        elsewhere = {**seeded, "MLOPS_HOME": str(tmp_path / "elsewhere")}
        for args in (
            ("channels", "test", "ops-webhook", "--org", "acme", "--as", "admin@acme.example"),
            ("secrets", "rotate"),
            ("secrets", "reencrypt"),
        ):
            result = mlops(elsewhere, *args)
            assert result.returncode == 2, (args, result.stderr)
            line = one_line_error(result)
            assert "MLOPS_SECRET_KEY" in line and "MLOPS_HOME" in line
        assert not (tmp_path / "elsewhere" / "secret.key").exists()

    def test_secrets_init_makes_the_key_once(self, seeded, tmp_path):
        env = {**seeded, "MLOPS_HOME": str(tmp_path / "new")}
        first = mlops(env, "secrets", "init")
        assert first.returncode == 0 and "created a secret key" in first.stdout
        key = (tmp_path / "new" / "secret.key").read_text()
        again = mlops(env, "secrets", "init")
        assert again.returncode == 0 and "nothing changed" in again.stdout
        assert (tmp_path / "new" / "secret.key").read_text() == key


class TestRotation:
    def test_rotation_puts_a_new_key_first_and_reencrypts_everything(self, tenants_db, home):
        url, _, _ = tenants_db
        ensure_key_file()
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        channels.add_channel(admin, name="hook", channel_type="teams", settings={"webhook_url": "http://127.0.0.1:9/x"})
        old_keys = secret_box().keys
        before = _configurations(url)
        assert channels.rotate_key() >= 1
        keys = secret_box().keys
        assert keys[1:] == old_keys and len(keys) == len(old_keys) + 1
        after = _configurations(url)
        assert after["hook"]["secret"] != before["hook"]["secret"]
        assert Fernet(keys[0]).decrypt(after["hook"]["secret"].encode())  # under the new key

    def test_rotation_that_cannot_decrypt_one_secret_changes_nothing(self, tenants_db, home):
        url, _, _ = tenants_db
        ensure_key_file()
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        channels.add_channel(admin, name="good", channel_type="teams", settings={"webhook_url": "http://127.0.0.1:9/x"})
        # a channel sealed with a key this home does not have (e.g. made with another MLOPS_HOME)
        foreign = Fernet.generate_key().decode()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLOPS_SECRET_KEY", foreign)
            channels.add_channel(
                admin, name="foreign", channel_type="teams", settings={"webhook_url": "http://127.0.0.1:9/y"}
            )
        key_file = (home / "secret.key").read_bytes()
        before = _configurations(url)
        with pytest.raises(SecretError, match="channel 'foreign'.*nothing was changed"):
            channels.rotate_key()
        assert (home / "secret.key").read_bytes() == key_file
        assert _configurations(url) == before
