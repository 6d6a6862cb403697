"""Where notification channels may send: public addresses only, unless the operator allows a host by name.

A channel's URL (or an e-mail channel's SMTP host) is chosen by a tenant; without this check `channels add` +
`channels test` would let any organization admin make the control plane POST to the cloud metadata service
(169.254.169.254), or talk SMTP to the database host or any other internal address. The check runs on the
addresses the name resolves to (so a public name pointing at 127.0.0.1 is refused too), at `channels add` and
again just before each delivery (the DNS answer may have changed since). Senders never follow redirects, so an
allowed host cannot bounce a request inward.

`MLOPS_ALLOWED_NOTIFY_HOSTS` (comma-separated host names or IP addresses, compared case-insensitively and
exactly as written in the URL) lets an on-premises receiver on a private address through.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from core.errors import InvalidInput

ALLOWED_HOSTS_ENV = "MLOPS_ALLOWED_NOTIFY_HOSTS"


class DestinationRefused(InvalidInput):
    """The channel's address is not one the control plane may send to (never carries the URL itself)."""


class DestinationUnresolvable(InvalidInput):
    """The channel's host name does not resolve (now)."""


def allowed_hosts() -> frozenset[str]:
    """The operator's allow list: `MLOPS_ALLOWED_NOTIFY_HOSTS`, lower-cased."""
    raw = os.environ.get(ALLOWED_HOSTS_ENV, "")
    return frozenset(h.strip().lower().strip("[]") for h in raw.split(",") if h.strip())


def is_public(address: str) -> bool:
    """Whether an IP address is globally routable (not loopback, private, link-local, reserved, multicast...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id ("fe80::1%eth0") is link-local
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, what: str = "channel") -> None:
    """Raise DestinationRefused unless every address `url`'s host resolves to is public, or the host is on the
    allow list; DestinationUnresolvable when it does not resolve. Messages name the host, never the URL (its
    path and query carry tokens)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise DestinationRefused(f"{what}: the URL must be http(s) with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused(f"{what}: the URL's port is not a number from 1 to 65535") from None
    check_host(host, port, what=what)


def check_host(host: str, port: int, *, what: str = "channel") -> None:
    """The same rule for a bare host and port (an e-mail channel's SMTP server): public addresses only, unless
    the host is on the allow list."""
    if host.lower().strip("[]") in allowed_hosts():
        return  # the operator vouches for it; it need not resolve from here at `channels add`
    resolve_checked(host, port, what=what)


def resolve_checked(host: str, port: int, *, what: str = "channel") -> list[str]:
    """The addresses `host` resolves to, once every one of them passed the rule above (an allow-listed host's
    addresses are not checked). Connecting to one of these, rather than resolving the name again, is what
    keeps a name that answers differently the second time (DNS rebinding) from reaching an internal address."""
    host = host.lower().strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise DestinationUnresolvable(f"{what}: host '{host}' does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if host in allowed_hosts():
        return addresses
    if not addresses or not all(is_public(address) for address in addresses):
        raise DestinationRefused(
            f"{what}: host '{host}' is a loopback, private, link-local or otherwise internal address; "
            f"an operator can allow it with {ALLOWED_HOSTS_ENV}"
        )
    return addresses
