"""Where a request came from (the CLI, a flow run, an API in front of us), for the audit trail.

Its own module, free of SQLAlchemy, so `mlops` can set it before every command without paying for the
database layer when the command is only `--help`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientContext:
    """Where a request came from, when known."""

    user_agent: str | None = None
    ip_address: str | None = None


_client: ContextVar[ClientContext | None] = ContextVar("mlops_client", default=None)


@contextmanager
def client_context(*, user_agent: str | None = None, ip_address: str | None = None) -> Iterator[None]:
    """Attribute every audit row written inside the block to this client."""
    token = _client.set(ClientContext(user_agent=user_agent, ip_address=ip_address))
    try:
        yield
    finally:
        _client.reset(token)


def current_client() -> ClientContext:
    return _client.get() or ClientContext()
