"""What every command module shares: the common options, the acting principal, input parsing, JSON output."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from core.errors import InvalidInput
from core.validation import check_json_value
from core.vocabulary import Environment, one_of

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

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


def parse_deployment_ref(ref: str, environment: str) -> tuple[str, str, str]:
    """(organization, project, deployment) of `ORG/PROJECT/DEPLOYMENT`, with `--env` checked."""
    parts = ref.split("/")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InvalidInput(f"'{ref}' is not ORG/PROJECT/DEPLOYMENT (e.g. acme/fraud-detection/fraud-api-prod)")
    one_of(Environment, environment, "--env")
    return parts[0], parts[1], parts[2]


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def print_rows(
    rows: list[dict[str, Any]],
    as_json: bool,
    line: Callable[[dict[str, Any]], str],
    *,
    header: str | None = None,
    empty: str | None = None,
) -> None:
    """A listing command's output: the rows as JSON with --json; otherwise `empty` when there are none, else
    `header` and one `line` per row."""
    if as_json:
        echo_json(rows)
        return
    if not rows:
        if empty is not None:
            typer.echo(empty)
        return
    if header is not None:
        typer.echo(header)
    for row in rows:
        typer.echo(line(row))


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


MAX_INPUT_BYTES = 10 * 1024 * 1024  # a metrics, schema, config or requirements file is small; refuse anything huge


def _read_bytes(source: str, option: str) -> bytes:
    try:
        if source == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read(MAX_INPUT_BYTES + 1) if stream else sys.stdin.read().encode()
        else:
            path = Path(source)
            if path.is_dir():
                raise InvalidInput(f"{option}: {source} is a directory, not a file")
            with path.open("rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"{option}: cannot read {source}: {exc.strerror}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInput(f"{option}: {source} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB")
    return data


def _decode(data: bytes, source: str, option: str) -> str:
    if b"\x00" in data:
        raise InvalidInput(f"{option}: {source} is a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{option}: {source} is not UTF-8 text (byte {exc.start})") from None


def read_text(source: str, option: str) -> str:
    """A small UTF-8 text file; InvalidInput for a missing, binary, non-UTF-8 or huge one."""
    text = _decode(_read_bytes(source, option), source, option)
    if _CONTROL.search(text):
        raise InvalidInput(f"{option}: {source} contains control characters; is it a text file?")
    return text


def read_json(source: str, option: str, *, expect: type | None = dict) -> Any:
    """A JSON document from a file or `-` (stdin) that PostgreSQL can store: UTF-8, finite numbers, no NUL;
    with `expect` (default: an object), of that type."""
    text = _decode(_read_bytes(source, option), source, option)

    def no_constant(name: str) -> Any:
        raise InvalidInput(f"{option}: {source} holds {name}; only finite numbers are allowed")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option}: {source} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InvalidInput(f"{option}: {source} is nested too deeply") from None
    if expect is not None and not isinstance(value, expect):
        kind = {dict: "an object", list: "an array"}.get(expect, expect.__name__)
        raise InvalidInput(f"{option}: {source} must hold a JSON {kind}, not {_json_kind(value)}")
    return check_json_value(value, option)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
