"""Notification channels: settings validation, redaction, message formatting and the senders.

Pure functions first (validation, redaction, message bodies); the senders at the bottom are the only code
that talks to Slack, Teams, webhooks and SMTP. No error message or log line ever includes a secret: URLs
of webhooks are secrets (they embed tokens), so errors name the channel type and status only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.errors import InvalidInput, MlopsError, TransientError
from core.validation import check_email, check_text
from services.netguard import DestinationUnresolvable, check_host, check_url

# httpx logs every request's full URL at INFO, and webhook URLs carry tokens: keep those loggers quiet.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class ChannelFields:
    required_public: tuple[str, ...] = ()
    optional_public: tuple[str, ...] = ()
    required_secret: tuple[str, ...] = ()
    optional_secret: tuple[str, ...] = ()

    @property
    def secret(self) -> tuple[str, ...]:
        return self.required_secret + self.optional_secret

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.required_public + self.optional_public + self.secret


CHANNEL_FIELDS: dict[str, ChannelFields] = {
    "webhook": ChannelFields(
        optional_public=("timeout_seconds",), required_secret=("url",), optional_secret=("headers", "signing_secret")
    ),
    "slack": ChannelFields(optional_public=("channel", "timeout_seconds"), required_secret=("webhook_url",)),
    "teams": ChannelFields(optional_public=("timeout_seconds",), required_secret=("webhook_url",)),
    "email": ChannelFields(
        required_public=("smtp_host", "smtp_port", "from_addr", "to_addrs"),
        optional_public=("username", "starttls", "timeout_seconds"),
        optional_secret=("password",),
    ),
}
URL_FIELDS = ("url", "webhook_url")


def describe_fields(channel_type: str) -> str:
    """A channel type's settings, e.g. "url (required, secret), headers (secret), timeout_seconds"."""
    fields = CHANNEL_FIELDS[channel_type]

    def label(name: str) -> str:
        marks = [
            m
            for m, on in (
                ("required", name in fields.required_public + fields.required_secret),
                ("secret", name in fields.secret),
            )
            if on
        ]
        return f"{name} ({', '.join(marks)})" if marks else name

    return ", ".join(label(name) for name in fields.allowed)


class DeliveryRefused(MlopsError):
    """The peer answered, and refused the message (3xx, 4xx other than 429): retrying will not help."""


def status_class(exc: BaseException) -> str:
    """What a failed delivery may tell the person who set the channel up: the peer's status class ("4xx") or
    "no response" — not the network error, which would make `channels test` a port scanner."""
    return getattr(exc, "status_class", None) or "no response"


def _failure(error: type[MlopsError], message: str, status: int | None = None) -> MlopsError:
    exc = error(message)
    exc.status_class = f"{status // 100}xx" if status else None  # type: ignore[attr-defined]
    return exc


def validate_channel_settings(channel_type: str, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a channel's settings into (public, secret) after checking them; InvalidInput names the field."""
    fields = CHANNEL_FIELDS.get(channel_type)
    if fields is None:
        raise InvalidInput(f"unknown channel type '{channel_type}'; expected one of {', '.join(CHANNEL_FIELDS)}")
    if not isinstance(settings, dict):
        raise InvalidInput(f"{channel_type} channel: the settings must be a JSON object")
    unknown = sorted(set(settings) - set(fields.allowed))
    if unknown:
        raise InvalidInput(
            f"{channel_type} channel: unknown setting(s) {', '.join(unknown)}; valid: {describe_fields(channel_type)}"
        )
    missing = [f for f in fields.required_public + fields.required_secret if settings.get(f) in (None, "", [])]
    if missing:
        raise InvalidInput(f"{channel_type} channel: missing setting(s) {', '.join(missing)}")
    for name in URL_FIELDS:
        if name in settings:
            _validate_url(channel_type, name, settings[name])
    if channel_type == "email":
        _validate_email(settings)
    if "headers" in settings:
        _validate_headers(settings["headers"])
    for name in ("channel", "signing_secret", "username", "password"):
        if name in settings:
            check_text(settings[name], f"{channel_type} channel: '{name}'", max_length=1024)
    if "starttls" in settings and not isinstance(settings["starttls"], bool):
        raise InvalidInput("email channel: 'starttls' must be true or false")
    if "timeout_seconds" in settings and not _positive_number(settings["timeout_seconds"]):
        raise InvalidInput(f"{channel_type} channel: 'timeout_seconds' must be a number of seconds from 0 to 300")
    public = {k: v for k, v in settings.items() if k not in fields.secret}
    secret = {k: v for k, v in settings.items() if k in fields.secret}
    return public, secret


def redact_value(name: str, value: Any) -> Any:
    """What a secret setting looks like on screen: a URL keeps its scheme and host, anything else is ***."""
    if name in URL_FIELDS and isinstance(value, str):
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/***"
    if isinstance(value, dict):
        return {k: "***" for k in value}
    return "***"


def message_body(channel_type: str, *, title: str, text: str, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON body each HTTP channel type expects."""
    if channel_type == "slack":
        return {"text": f"*{title}*\n{text}"}
    if channel_type == "teams":
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "title": title, "text": text}
    return {"title": title, "text": text, "data": data}


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>` HMAC of the body, for receivers that verify webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


MAX_URL_LENGTH = 2048
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")


def _validate_url(channel_type: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH or re.search(r"[\s\x00-\x1f\x7f]", value):
        raise InvalidInput(
            f"{channel_type} channel: '{name}' must be one http(s) URL of at most {MAX_URL_LENGTH} characters"
        )
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        raise InvalidInput(f"{channel_type} channel: '{name}' has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{channel_type} channel: '{name}' must be an http(s) URL")


def _validate_headers(headers: Any) -> None:
    """Header names are tokens and values single lines: a CR/LF would let a tenant inject headers."""
    if not isinstance(headers, dict) or len(headers) > 50:
        raise InvalidInput("webhook channel: 'headers' must be an object of (at most 50) header names to values")
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidInput("webhook channel: a header name holds characters a header name cannot")
        check_text(value, f"webhook channel: header '{name}'", max_length=4096)


def _validate_email(settings: dict[str, Any]) -> None:
    """Addresses are single plain addresses (CR/LF/NUL would inject SMTP headers), the port a real port."""
    to_addrs = settings.get("to_addrs")
    if isinstance(to_addrs, str):
        to_addrs = [to_addrs]
    if not isinstance(to_addrs, list) or not to_addrs or len(to_addrs) > 100:
        raise InvalidInput("email channel: 'to_addrs' must be a list of (at most 100) e-mail addresses")
    for address in to_addrs:
        check_email(address, "email channel: 'to_addrs' entry")
    check_email(settings.get("from_addr"), "email channel: 'from_addr'")
    check_text(settings.get("smtp_host"), "email channel: 'smtp_host'", max_length=255)
    port = settings.get("smtp_port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInput("email channel: 'smtp_port' must be a port number")


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 300


# --- senders: the only code that talks to channels -------------------------------------------------------


def send_message(channel_type: str, settings: dict[str, Any], *, title: str, text: str, data: dict[str, Any]) -> None:
    """Deliver one message. TransientError when worth retrying (network, 5xx, 429), DeliveryRefused otherwise."""
    timeout = float(settings.get("timeout_seconds", 10))
    if channel_type == "email":
        _send_email(settings, title=title, text=text, timeout=timeout)
        return
    url = settings["url"] if channel_type == "webhook" else settings["webhook_url"]
    body = json.dumps(message_body(channel_type, title=title, text=text, data=data), default=str).encode()
    headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in settings.get("headers", {}).items()}}
    if settings.get("signing_secret"):
        headers["X-Mlops-Signature"] = signature(settings["signing_secret"], body)
    try:
        check_url(url, what=f"{channel_type} channel")  # again now: the name may resolve elsewhere than at `add`
    except DestinationUnresolvable as exc:
        raise _failure(TransientError, str(exc)) from None
    try:
        # never follow a redirect: an allowed public host could otherwise bounce the request to an internal one
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        # httpx's message carries the URL, which is a secret: report the kind of failure only
        raise _failure(TransientError, f"{channel_type} channel unreachable ({type(exc).__name__})") from None
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        hint = f", retry after {retry_after}s" if retry_after else ""
        raise _failure(TransientError, f"{channel_type} channel answered HTTP {status}{hint}", status)
    if status >= 300:
        raise _failure(DeliveryRefused, f"{channel_type} channel refused the message: HTTP {status}", status)


def _send_email(settings: dict[str, Any], *, title: str, text: str, timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = settings["from_addr"]
    to_addrs = settings["to_addrs"] if isinstance(settings["to_addrs"], list) else [settings["to_addrs"]]
    message["To"] = ", ".join(to_addrs)
    message.set_content(text)
    try:
        check_host(settings["smtp_host"], int(settings["smtp_port"]), what="email channel")  # again now, as for URLs
    except DestinationUnresolvable as exc:
        raise _failure(TransientError, str(exc)) from None
    try:
        with smtplib.SMTP(settings["smtp_host"], int(settings["smtp_port"]), timeout=timeout) as smtp:
            if settings.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if settings.get("username"):
                smtp.login(settings["username"], settings.get("password", ""))
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        code = exc.smtp_code
        if 400 <= code < 500:
            raise _failure(TransientError, f"email channel: SMTP server answered {code}", code) from None
        raise _failure(DeliveryRefused, f"email channel: SMTP server refused the message ({code})", code) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise _failure(TransientError, f"email channel: SMTP server unreachable ({type(exc).__name__})") from None


# --- batch senders for notification dispatch ----------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One POST: the URL and headers may hold secrets and are never logged or put in an error."""

    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float = 10.0


@dataclass(frozen=True)
class SendResult:
    """What the peer answered: a status code (None when it did not), Retry-After, a secret-free error; `kind`
    overrides the HTTP reading (`retry` or `permanent`) for SMTP answers."""

    status_code: int | None
    retry_after: str | None = None
    error: str | None = None
    kind: str | None = None


def post_many(requests: list[HttpRequest], *, concurrency: int = 32) -> list[SendResult]:
    """POST every request, at most `concurrency` at a time over pooled keep-alive connections; results in order.

    Never raises for a peer's failure: each result says what happened (the dispatcher decides what it means).
    """
    if not requests:
        return []
    refused = _refused_destinations(requests)
    allowed = [r for r in requests if r.url not in refused]
    answers = iter(asyncio.run(_post_many(allowed, concurrency)) if allowed else [])
    return [refused[r.url] if r.url in refused else next(answers) for r in requests]


def _refused_destinations(requests: list[HttpRequest]) -> dict[str, SendResult]:
    """The URLs `netguard` refuses now (checked once per URL, right before sending: a name may resolve elsewhere
    than when the channel was added), each with its secret-free result."""
    refused: dict[str, SendResult] = {}
    for url in {r.url for r in requests}:
        try:
            check_url(url)
        except DestinationUnresolvable as exc:
            refused[url] = SendResult(None, error=str(exc), kind="retry")
        except InvalidInput as exc:
            refused[url] = SendResult(None, error=str(exc), kind="permanent")
    return refused


async def _post_many(requests: list[HttpRequest], concurrency: int) -> list[SendResult]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:

        async def one(request: HttpRequest) -> SendResult:
            async with gate:
                try:
                    response = await client.post(
                        request.url, content=request.body, headers=request.headers, timeout=request.timeout
                    )
                except httpx.HTTPError as exc:
                    # httpx's message carries the URL, which is a secret: the kind of failure only
                    return SendResult(None, error=f"no answer ({type(exc).__name__})")
                error = None if response.is_success else f"HTTP {response.status_code}"
                return SendResult(response.status_code, response.headers.get("Retry-After"), error)

        return await asyncio.gather(*(one(r) for r in requests))


def send_email_message(settings: dict[str, Any], message: EmailMessage) -> SendResult:
    """Send a built message over SMTP (optional STARTTLS and login); the answer as a `SendResult`."""
    timeout = float(settings.get("timeout_seconds", 10))
    to_addrs = settings["to_addrs"] if isinstance(settings["to_addrs"], list) else [settings["to_addrs"]]
    try:
        check_host(settings["smtp_host"], int(settings["smtp_port"]), what="email channel")  # again now
    except DestinationUnresolvable as exc:
        return SendResult(None, error=str(exc), kind="retry")
    except InvalidInput as exc:
        return SendResult(None, error=str(exc), kind="permanent")
    try:
        with smtplib.SMTP(settings["smtp_host"], int(settings["smtp_port"]), timeout=timeout) as smtp:
            if settings.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if settings.get("username"):
                smtp.login(settings["username"], settings.get("password", ""))
            smtp.send_message(message, from_addr=settings["from_addr"], to_addrs=to_addrs)
    except smtplib.SMTPResponseException as exc:
        kind = "retry" if 400 <= exc.smtp_code < 500 else "permanent"
        return SendResult(exc.smtp_code, error=f"SMTP {exc.smtp_code}", kind=kind)
    except smtplib.SMTPRecipientsRefused:
        return SendResult(550, error="SMTP recipients refused", kind="permanent")
    except (OSError, smtplib.SMTPException) as exc:
        return SendResult(None, error=f"SMTP server unreachable ({type(exc).__name__})", kind="retry")
    return SendResult(250)
