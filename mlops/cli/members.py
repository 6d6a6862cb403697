"""`mlops users` and `mlops keys`: organization members and API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli.common import (
    AsOption,
    JsonOption,
    OrgOption,
    command_app,
    echo_json,
    parse_datetime,
    principal_for,
)

users_app = command_app(help="Organization members.", no_args_is_help=True)
keys_app = command_app(help="API keys for CI and other programs.", no_args_is_help=True)


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The new member's e-mail.")],
    first_name: Annotated[str, typer.Option("--first-name")],
    last_name: Annotated[str, typer.Option("--last-name")],
    role: Annotated[str, typer.Option("--role", help="admin, developer or viewer.")] = "viewer",
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Add a member to the organization (admins; the plan's max_users applies)."""
    from services.members import add_member

    principal = principal_for(organization, as_email)
    member = add_member(principal, email=email, first_name=first_name, last_name=last_name, role=role)
    if member.pending:
        typer.echo(
            f"invited {member.email} as {member.role} of {principal.organization_slug}; they join with "
            f"`mlops users accept --org {principal.organization_slug} --as {member.email}`"
        )
    else:
        typer.echo(f"{member.email} is now {member.role} of {principal.organization_slug}")


@users_app.command("accept")
def users_accept(organization: OrgOption = None, as_email: AsOption = None) -> None:
    """Accept your invitation to an organization (you, as --as EMAIL)."""
    from core.errors import InvalidInput
    from services.members import accept_invitation

    if not organization or not as_email:
        raise InvalidInput("name the organization (--org SLUG) and yourself (--as EMAIL)")
    member = accept_invitation(organization=organization, email=as_email)
    typer.echo(f"{member.email} joined {organization} as {member.role}")


# --- API keys -------------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for, e.g. ci.")],
    user: Annotated[str, typer.Option("--user", help="E-mail of the user the key acts as.")],
    scope: Annotated[list[str], typer.Option("--scope", help="Scope, repeatable: models:promote, drift:run, ...")],
    expires: Annotated[str | None, typer.Option("--expires", help="Expiry, ISO 8601 (e.g. 2027-01-01).")] = None,
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Create an API key and print it once: only its hash is stored."""
    from services.apikeys import create_key

    expires_at = parse_datetime(expires, "--expires") if expires else None
    principal = principal_for(organization, as_email)
    plaintext, info = create_key(principal, user_email=user, name=name, scopes=scope, expires_at=expires_at)
    typer.echo(plaintext)
    typer.echo(
        f"created key '{info.name}' ({info.key_prefix}…) for {info.user_email} with scopes "
        f"{', '.join(info.scopes)}; it is shown only this once",
        err=True,
    )


@keys_app.command("list")
def keys_list(organization: OrgOption = None, as_email: AsOption = None, as_json: JsonOption = False) -> None:
    """List API keys (prefixes only)."""
    from services.apikeys import list_keys

    keys = list_keys(principal_for(organization, as_email))
    if as_json:
        echo_json([k.__dict__ for k in keys])
        return
    for k in keys:
        expiry = f"  expires {k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at and k.state == "active" else ""
        typer.echo(
            f"{k.key_prefix}…  {k.name}  {k.user_email}  {','.join(k.scopes)}  {k.state}{expiry}  "
            f"last used {k.last_used_at}"
        )


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's display prefix (mlk_…).")],
    organization: OrgOption = None,
    as_email: AsOption = None,
) -> None:
    """Revoke an API key."""
    from services.apikeys import revoke_key

    info = revoke_key(principal_for(organization, as_email), key_prefix=prefix)
    typer.echo(f"revoked key '{info.name}' ({info.key_prefix}…)")
