"""What every command module shares: the common options, the acting principal, input parsing, JSON output."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from core.errors import InvalidInput

OrgOption = Annotated[str | None, typer.Option("--org", help="Organization slug.", envvar="MLOPS_ORG")]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Acting user's e-mail (local use; CI uses MLOPS_API_KEY).", envvar="MLOPS_AS"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


class _Group(typer.core.TyperGroup):
    """Typer 0.29 coerces an absent `--help` of every enclosing group (value None) through pydantic, which
    costs ~0.2 s of imports per `mlops <group> ... --help`; an explicit False default is a bool and skips it."""

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)
        if option is not None:
            option.default = False
        return option


def command_app(**options: Any) -> typer.Typer:
    """A command group that starts fast: plain-text help (Rich's help formatter alone imports for longer than
    the 0.3 s a `--help` may take; CI calls `mlops` many times) and no pydantic for an absent `--help`."""
    return typer.Typer(rich_markup_mode=None, cls=_Group, **options)


def principal_for(organization: str | None, as_email: str | None):
    """The acting principal: MLOPS_API_KEY when set, else --as EMAIL in --org."""
    from services.auth import acting_principal

    return acting_principal(organization, as_email)


def has_identity(as_email: str | None) -> bool:
    """Whether the command names who is acting (--as or MLOPS_API_KEY); without one, scheduled work runs as the
    system."""
    from services.auth import api_key_from_env

    return bool(as_email or api_key_from_env())


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
