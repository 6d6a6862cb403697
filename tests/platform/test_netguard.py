"""Where channels may send: internal addresses refused at `channels add` and again before each delivery."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool, text

from services import netguard
from services.auth import resolve_principal
from tasks.notifications import channels


class TestIsPublic:
    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "224.0.0.1",
            "fe80::1%eth0",
        ],
    )
    def test_internal_addresses_are_not_public(self, address):
        assert not netguard.is_public(address)

    @pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
    def test_global_addresses_are_public(self, address):
        assert netguard.is_public(address)


class TestCheckUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "https://10.0.0.5/hook?token=s3cret",
        ],
    )
    def test_internal_destinations_are_refused_after_resolution(self, monkeypatch, url):
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "")
        with pytest.raises(netguard.DestinationRefused) as caught:
            netguard.check_url(url)
        assert "s3cret" not in str(caught.value) and netguard.ALLOWED_HOSTS_ENV in str(caught.value)

    def test_a_named_host_can_be_allowed(self, monkeypatch):
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "hooks.internal, LOCALHOST")
        netguard.check_url("http://localhost:9/x")
        with pytest.raises(netguard.DestinationRefused):
            netguard.check_url("http://127.0.0.1:9/x")  # allowed by name, not by what it resolves to

    def test_an_unresolvable_host_is_bad_input(self, monkeypatch):
        with pytest.raises(netguard.DestinationUnresolvable):
            netguard.check_url("http://no-such-host.invalid/x")


class TestChannels:
    def test_add_refuses_the_metadata_service_and_writes_nothing(self, tenants_db, monkeypatch):
        url, _, _ = tenants_db
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        for channel_type, field in (("webhook", "url"), ("slack", "webhook_url"), ("teams", "webhook_url")):
            with pytest.raises(netguard.DestinationRefused):
                channels.add_channel(
                    admin,
                    name=f"imds-{channel_type}",
                    channel_type=channel_type,
                    settings={field: "http://169.254.169.254/latest/meta-data/"},
                )
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT count(*) FROM notification_channels WHERE name LIKE 'imds%'")).scalar() == 0
            )
        engine.dispose()

    def test_the_check_runs_again_before_sending(self, tenants_db, http_peer, monkeypatch):
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        channels.add_channel(admin, name="hook", channel_type="webhook", settings={"url": f"{http_peer.url}/h"})
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "")  # the operator withdrew the exception
        with pytest.raises(netguard.DestinationRefused):
            channels.test_channel(admin, name="hook")
        assert http_peer.requests == []

    def test_an_email_channels_smtp_host_is_held_to_the_same_rule(self, tenants_db, smtp_peer, monkeypatch):
        """A tenant's SMTP host must not reach inside either: refused at `add`, and again before each send."""
        from email.message import EmailMessage

        from services.senders import send_email_message

        url, _, _ = tenants_db
        admin = resolve_principal(organization="alpha", as_email="admin@alpha.example")
        settings = {
            "smtp_host": smtp_peer.host,
            "smtp_port": smtp_peer.port,
            "from_addr": "mlops@alpha.example",
            "to_addrs": ["ops@alpha.example"],
        }
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "")
        with pytest.raises(netguard.DestinationRefused, match="email channel: host '127.0.0.1'"):
            channels.add_channel(admin, name="mail", channel_type="email", settings=settings)
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM notification_channels WHERE name = 'mail'")).scalar() == 0
        engine.dispose()

        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "127.0.0.1")  # an operator allows the on-premises relay
        channels.add_channel(admin, name="mail", channel_type="email", settings=settings)
        assert channels.test_channel(admin, name="mail") is not None and len(smtp_peer.messages) == 1
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "")  # ... and withdraws it: nothing is sent any more
        with pytest.raises(netguard.DestinationRefused):
            channels.test_channel(admin, name="mail")
        message = EmailMessage()
        message["Subject"] = "dispatch"
        message.set_content("x")
        result = send_email_message(settings, message)
        assert result.kind == "permanent" and "internal address" in (result.error or "")
        assert len(smtp_peer.messages) == 1
