"""What every command module shares: the common options, the acting principal, input parsing, JSON output."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import InvalidInput

OrgOption = Annotated[str | None, typer.Option("--org", help="Organization slug.", envvar="MLOPS_ORG")]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Acting user's e-mail (local use; CI uses MLOPS_API_KEY).", envvar="MLOPS_AS"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def principal_for(organization: str | None, as_email: str | None):
    """The acting principal: MLOPS_API_KEY when set, else --as EMAIL in --org."""
    from services.auth import acting_principal

    return acting_principal(organization, as_email)


def has_identity(as_email: str | None) -> bool:
    """Whether the command names who is acting (--as or MLOPS_API_KEY); without one, scheduled work runs as the
    system."""
    from services.auth import api_key_from_env

    return bool(as_email or api_key_from_env())


ENVIRONMENTS = ("development", "staging", "production")


def parse_deployment_ref(ref: str, environment: str) -> tuple[str, str, str]:
    """(organization, project, deployment) of `ORG/PROJECT/DEPLOYMENT`, with `--env` checked."""
    parts = ref.split("/")
    if len(parts) != 3 or not all(parts):
        raise InvalidInput(f"'{ref}' is not ORG/PROJECT/DEPLOYMENT")
    if environment not in ENVIRONMENTS:
        raise InvalidInput(f"--env must be one of {', '.join(ENVIRONMENTS)}, got '{environment}'")
    return parts[0], parts[1], parts[2]


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def parse_pairs(items: list[str], option: str, kind: type) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"{option} expects COLUMN=VALUE, got '{item}'")
        try:
            pairs[name] = kind(value)
        except ValueError:
            raise InvalidInput(f"{option} {name}: '{value}' is not a valid {kind.__name__}") from None
    return pairs


def parse_datetime(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option}: '{text}' is not an ISO 8601 date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def read_text(source: str, option: str) -> str:
    try:
        return Path(source).read_text()
    except OSError as exc:
        raise InvalidInput(f"{option}: cannot read {source}: {exc.strerror}") from None


def read_json(source: str, option: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise InvalidInput(f"{option}: cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option}: {source} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
