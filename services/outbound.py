"""Outbound HTTP to peers the control plane does not trust: a total deadline, a capped body, no redirects,
the network guard, and the address that was checked is the address that is used.

Every byte a webhook receiver, chat service or serving platform sends back is outside our transaction and
under someone else's control. httpx's timeouts are per operation (a receiver that drips one byte every half
second never trips a 2 s read timeout) and its `.content` reads a body of any size, so callers that talk to
peers go through `fetch` / `request` instead:

- one **deadline** for the whole exchange: resolving, connecting, sending and reading the whole (capped)
  answer; past it the request is cancelled and `PeerFailure("timeout")` raised;
- at most `max_body` bytes of the answer are read (64 KiB by default); the rest is never read: the connection
  is closed instead, so a 1 GB answer costs 64 KiB. Bodies are read raw (`Accept-Encoding: identity`; a
  compressed answer is not inflated), so a small compressed answer cannot expand either;
- redirects are never followed (a 3xx is just a status to the caller);
- the destination passes `services.netguard` (public addresses only, unless the operator allows the host) and
  the connection goes to the very address that was checked, with the original `Host` header and TLS server
  name, so a name that resolves to a public address for the check and to 127.0.0.1 for the connection (DNS
  rebinding) cannot slip through;
- nothing a peer sends reaches an error message: `PeerFailure` carries the kind of failure and the host only,
  never the URL (its path and query carry tokens) or the body; `excerpt()` gives a short, sanitised excerpt
  for the callers that want to show one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from core.errors import InvalidInput
from services.netguard import DestinationRefused, DestinationUnresolvable, resolve_checked

MAX_BODY = 64 * 1024
_CHUNK = 16 * 1024


class PeerFailure(Exception):
    """The peer gave no usable answer. `kind` is one of `refused` (the network guard), `unresolvable`,
    `unreachable` (connection refused or reset), `timeout` (the deadline passed), `protocol` (not HTTP) or
    `garbage` (an answer that is not what was asked for). The message names the host, never the URL."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):
        return (type(self), (self.kind, str(self)))

    @property
    def retryable(self) -> bool:
        """Whether trying again later may help (the guard's refusal and a garbage answer will not)."""
        return self.kind in ("unresolvable", "unreachable", "timeout", "protocol")


@dataclass(frozen=True)
class Reply:
    """What the peer answered: its status, headers (lower-cased names) and at most `max_body` bytes of body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False  # the body was longer than the cap: the rest was never read
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self, what: str = "the answer") -> Any:
        """The body as JSON; PeerFailure("garbage") when it is not JSON or was cut off by the cap."""
        if self.truncated:
            raise PeerFailure("garbage", f"{what} is larger than {len(self.body)} bytes")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise PeerFailure("garbage", f"{what} is not JSON") from None


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def excerpt(body: bytes, limit: int = 80) -> str:
    """At most `limit` printable ASCII characters of `body`, whitespace and control characters collapsed: safe
    in a log line or an error message (no line breaks, no terminal escapes, no markup that matters)."""
    text = _UNPRINTABLE.sub(" ", body[: limit * 4].decode("ascii", "replace")).strip()
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pinned(url: str, *, what: str) -> tuple[str, str, dict[str, Any]]:
    """`url` rewritten to the address the guard approved: (the URL with the IP literal, the `Host` header, the
    request extensions carrying the TLS server name). Raises PeerFailure("refused"/"unresolvable")."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise PeerFailure("refused", f"{what}: the URL must be http(s) with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PeerFailure("refused", f"{what}: the URL's port is not a number from 1 to 65535") from None
    try:
        address = resolve_checked(host, port, what=what)[0]
    except DestinationUnresolvable as exc:
        raise PeerFailure("unresolvable", str(exc)) from None
    except (DestinationRefused, InvalidInput) as exc:
        raise PeerFailure("refused", str(exc)) from None
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = parts.netloc.rsplit("@", 1)[-1]  # never forward userinfo
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), host_header, extensions


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline: float,
    what: str,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_body: int = MAX_BODY,
) -> Reply:
    """One request through `client` (which must not follow redirects), bounded as the module says."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            target, host_header, extensions = await asyncio.to_thread(pinned, url, what=what)
            request = client.build_request(
                method,
                target,
                content=content,
                headers={**(headers or {}), "Host": host_header, "Accept-Encoding": "identity"},
                extensions=extensions,
                timeout=httpx.Timeout(deadline),
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                body, truncated = await _read_capped(response, max_body)
            finally:
                await response.aclose()
    except TimeoutError:
        raise PeerFailure("timeout", f"{what}: no complete answer within {deadline:g}s") from None
    except httpx.TimeoutException:
        raise PeerFailure("timeout", f"{what}: no complete answer within {deadline:g}s") from None
    except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.CloseError):
        raise PeerFailure("unreachable", f"{what}: connection refused or reset") from None
    except httpx.HTTPError as exc:
        # httpx's messages carry the URL, which may hold a token: the kind of failure only
        raise PeerFailure("protocol", f"{what}: not a valid HTTP answer ({type(exc).__name__})") from None
    reply_headers = {k.lower(): v[:256] for k, v in list(response.headers.items())[:64]}
    return Reply(response.status_code, reply_headers, body, truncated, time.monotonic() - started)


async def _read_capped(response: httpx.Response, max_body: int) -> tuple[bytes, bool]:
    # one chunk past the cap tells whether the answer is longer than what we keep; memory stays bounded
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_body:
            break
    return b"".join(chunks)[:max_body], size > max_body


def new_client(*, concurrency: int = 32) -> httpx.AsyncClient:
    """A client for `fetch`: keep-alive connections, never following redirects, no environment proxies (a
    proxy would reach the peer from somewhere the guard did not check)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)


def request(
    method: str,
    url: str,
    *,
    deadline: float,
    what: str,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_body: int = MAX_BODY,
) -> Reply:
    """`fetch` for synchronous callers: its own client and event loop (in a helper thread when this thread
    already runs a loop)."""

    async def once() -> Reply:
        async with new_client(concurrency=1) as client:
            return await fetch(
                client, method, url, deadline=deadline, what=what, content=content, headers=headers, max_body=max_body
            )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(once())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, once()).result()
