"""Outbound HTTP to untrusted peers: a total deadline, a capped body, no redirects, the guard, a pinned address."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from services import netguard, outbound
from services.outbound import PeerFailure, excerpt


class TestDeadline:
    def test_a_drip_feeding_peer_is_cut_off_at_the_deadline(self, hostile_peer):
        peer = hostile_peer("drip", interval=0.2)
        started = time.monotonic()
        with pytest.raises(PeerFailure) as failure:
            outbound.request("POST", peer.url + "/hook", content=b"{}", deadline=1.0, what="webhook channel")
        assert failure.value.kind == "timeout"
        assert time.monotonic() - started < 1.6
        assert len(peer.requests) == 1

    @pytest.mark.parametrize("behaviour", ["hang", "hang_after_headers"])
    def test_a_silent_peer_is_cut_off_at_the_deadline(self, hostile_peer, behaviour):
        peer = hostile_peer(behaviour)
        started = time.monotonic()
        with pytest.raises(PeerFailure) as failure:
            outbound.request("GET", peer.url, deadline=0.5, what="serving platform")
        assert failure.value.kind == "timeout"
        assert failure.value.retryable
        assert time.monotonic() - started < 1.1

    def test_the_message_names_neither_the_url_nor_its_token(self, hostile_peer):
        peer = hostile_peer("hang")
        with pytest.raises(PeerFailure) as failure:
            outbound.request("POST", peer.url + "/T0/secret-token?sig=abc", deadline=0.2, what="slack channel")
        assert "secret-token" not in str(failure.value)
        assert "sig=abc" not in str(failure.value)
        assert str(failure.value).startswith("slack channel: ")


class TestBodyCap:
    def test_a_huge_answer_is_read_only_up_to_the_cap(self, hostile_peer):
        peer = hostile_peer("huge")
        reply = outbound.request("POST", peer.url, content=b"{}", deadline=5, what="webhook channel", max_body=4096)
        assert reply.status == 200
        assert reply.truncated
        assert reply.body == b"z" * 4096
        assert peer.bytes_sent < 64 << 20  # the rest was never read: the connection was closed

    def test_an_endless_chunked_answer_ends_at_the_cap(self, hostile_peer):
        peer = hostile_peer("endless")
        reply = outbound.request("GET", peer.url, deadline=5, what="serving platform")
        assert reply.truncated and len(reply.body) == outbound.MAX_BODY
        with pytest.raises(PeerFailure) as failure:
            reply.json()
        assert failure.value.kind == "garbage"

    def test_a_1_gib_answer_costs_a_process_little_memory(self, hostile_peer):
        peer = hostile_peer("huge", size=1 << 30)
        script = (
            "import re; from services import outbound;"
            f"r = outbound.request('POST', '{peer.url}', content=b'{{}}', deadline=20, what='webhook channel');"
            # VmHWM is this process's own peak (getrusage's ru_maxrss carries the forking parent's over exec)
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
            "print(r.status, len(r.body), r.truncated, hwm)"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
        status, size, truncated, max_rss_kib = result.stdout.split()
        assert (status, size, truncated) == ("200", str(outbound.MAX_BODY), "True")
        assert int(max_rss_kib) < 150 * 1024, f"peak RSS {int(max_rss_kib) // 1024} MiB"

    def test_an_answer_within_the_cap_is_whole(self, hostile_peer):
        peer = hostile_peer("ok", body=b'{"traffic": []}')
        reply = outbound.request("GET", peer.url, deadline=5, what="serving platform")
        assert (reply.status, reply.truncated, reply.json()) == (200, False, {"traffic": []})


class TestRedirectsAndGarbage:
    def test_a_redirect_is_a_status_never_followed(self, hostile_peer):
        peer = hostile_peer("redirect")
        reply = outbound.request("POST", peer.url, content=b"{}", deadline=5, what="webhook channel")
        assert reply.status == 302
        assert len(peer.requests) == 1

    def test_garbage_is_a_protocol_failure(self, hostile_peer):
        peer = hostile_peer("garbage")
        with pytest.raises(PeerFailure) as failure:
            outbound.request("GET", peer.url, deadline=5, what="serving platform")
        assert failure.value.kind in ("protocol", "unreachable")

    def test_a_huge_retry_after_is_only_a_header(self, hostile_peer):
        peer = hostile_peer("retry_after", status=503)
        reply = outbound.request("POST", peer.url, deadline=5, what="webhook channel")
        assert (reply.status, reply.headers["retry-after"]) == (503, "999999999")


class TestGuard:
    def test_an_internal_address_is_refused_before_connecting(self, monkeypatch):
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "")
        with pytest.raises(PeerFailure) as failure:
            outbound.request("GET", "http://169.254.169.254/latest/meta-data/", deadline=5, what="serving platform")
        assert failure.value.kind == "refused"
        assert not failure.value.retryable

    def test_the_checked_address_is_the_one_connected_to(self, hostile_peer, monkeypatch):
        """A name is resolved once, checked, and the connection goes to that address with the original Host
        header: resolving it again (where DNS rebinding would answer 127.0.0.1) never happens."""
        peer = hostile_peer("ok")
        port = int(peer.url.rsplit(":", 1)[1])
        answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]])

        def resolve_once(host, *args, **kwargs):
            assert host == "receiver.internal.example"
            return next(answers)  # a second lookup would raise StopIteration

        monkeypatch.setattr(socket, "getaddrinfo", resolve_once)
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "receiver.internal.example")
        reply = outbound.request("POST", f"http://receiver.internal.example:{port}/x", deadline=5, what="webhook")
        assert reply.status == 200
        assert peer.requests[0].headers["host"] == f"receiver.internal.example:{port}"

    def test_a_public_name_that_resolves_inward_is_refused(self, monkeypatch):
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80))],
        )
        monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "")
        with pytest.raises(PeerFailure) as failure:
            outbound.request("GET", "http://hooks.example.com/x", deadline=5, what="webhook channel")
        assert failure.value.kind == "refused"
        assert "hooks.example.com" in str(failure.value)


class TestExcerpt:
    def test_control_characters_and_length_are_cut(self):
        assert excerpt(b"line one\r\n\x1b[31mred\x00 " + b"a" * 500, limit=20) == "line one [31mred aa…"
        assert excerpt(b"\xff\xfe binary") == "binary"
