"""`mlops channels` and `mlops secrets`: notification channels and the keys of their secrets."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlops.cli.common import (
    AsOption,
    JsonOption,
    OrgOption,
    command_app,
    echo_json,
    principal_for,
    read_json,
)

channels_app = command_app(help="Notification channels (secrets encrypted at rest).", no_args_is_help=True)
secrets_app = command_app(help="Encryption keys of channel secrets.", no_args_is_help=True)


@channels_app.command("add")
def channels_add(
    name: Annotated[str, typer.Option("--name")],
    channel_type: Annotated[str, typer.Option("--type", help="email, slack, teams or webhook.")],
    config: Annotated[
        str, typer.Option("--config", help="Settings as a JSON file path, or - to read JSON from stdin.")
    ],
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Add a channel; secret settings (URLs, tokens, passwords) are encrypted before they reach the database.

    Settings per --type (JSON object; * required, (secret) encrypted at rest and redacted on screen):

    \b
    webhook: url* (secret), headers (secret), signing_secret (secret: whsec_..., Standard Webhooks), timeout_seconds
    slack:   webhook_url* (secret), channel, timeout_seconds
    teams:   webhook_url* (secret), timeout_seconds
    email:   smtp_host*, smtp_port*, from_addr*, to_addrs*, username, password (secret), starttls, timeout_seconds
    """
    from tasks.notifications.channels import add_channel

    settings = read_json(config, "--config")
    view = add_channel(principal_for(organization, as_email), name=name, channel_type=channel_type, settings=settings)
    typer.echo(f"added {view.type} channel '{view.name}': {json.dumps(view.settings)}")


@channels_app.command("list")
def channels_list(organization: OrgOption = None, as_email: AsOption = None, as_json: JsonOption = False) -> None:
    """List channels with their secrets redacted."""
    from tasks.notifications.channels import list_channels

    views = list_channels(principal_for(organization, as_email))
    if as_json:
        echo_json([v.__dict__ for v in views])
        return
    for v in views:
        typer.echo(f"{v.name}  {v.type}  {'active' if v.is_active else 'inactive'}  {json.dumps(v.settings)}")


@channels_app.command("test")
def channels_test(
    name: Annotated[str, typer.Argument(help="Channel name.")],
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Send a test message through a channel now: prints "delivered", or fails with "failed: <status class>"."""
    from tasks.notifications.channels import test_channel

    view = test_channel(principal_for(organization, as_email), name=name)
    typer.echo(f"{view.type} channel '{view.name}': delivered")


def _change(state: str, done: str):
    def command(
        name: Annotated[str, typer.Argument(help="Channel name.")],
        organization: OrgOption = None,
        as_email: AsOption = None,
    ) -> None:
        from tasks.notifications.channels import set_channel_state

        view, changed = set_channel_state(principal_for(organization, as_email), name=name, state=state)
        typer.echo(f"{view.type} channel '{view.name}': {done}" if changed else f"channel '{name}' is already {done}")

    return command


channels_app.command("disable", help="Stop delivering to a channel (its rules stay; `enable` resumes).")(
    _change("disable", "disabled")
)
channels_app.command("enable", help="Deliver to a disabled channel again.")(_change("enable", "enabled"))
channels_app.command("remove", help="Remove a channel (soft delete, audited): nothing is sent to it again.")(
    _change("remove", "removed")
)


@secrets_app.command("init")
def secrets_init() -> None:
    """Create the key file under MLOPS_HOME (when MLOPS_SECRET_KEY is unset and there is none yet)."""
    from services.secrets import ensure_key_file

    created = ensure_key_file()
    if created is None:
        typer.echo("a secret key is already configured (MLOPS_SECRET_KEY or the key file): nothing changed")
    else:
        typer.echo(f"created a secret key in {created}; keep it (and back it up): channel secrets need it")


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Add a new key first in the key file under MLOPS_HOME and re-encrypt every channel secret under it, all or
    nothing."""
    from tasks.notifications.channels import rotate_key

    count = rotate_key()
    typer.echo(f"re-encrypted {count} channel secret(s) under the new key; old keys still decrypt")


@secrets_app.command("reencrypt")
def secrets_reencrypt() -> None:
    """Re-encrypt every channel secret under the first key of MLOPS_SECRET_KEY (after you rotated it)."""
    from tasks.notifications.channels import reencrypt_all

    typer.echo(f"re-encrypted {reencrypt_all()} channel secret(s) under the newest key")
