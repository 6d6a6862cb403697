"""The `mlops` command line: database, seed and demo, keys, channels, secrets, registry, drift, metrics, retention.

Errors print one line on stderr and exit 2 for bad input, 3 for a refused permission, 1 for a failed
operation, 0 for success. Commands import what they use when they run, so `mlops --help` and the small
commands do not pay for loading Prefect.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import typer

from core.errors import MlopsError
from mlops.cli import channels, db, demo, drift, members, metrics, registry, retention, serve, ui
from mlops.cli.common import command_app

try:  # Typer 0.29+ vendors click and raises its own copies of click's exceptions
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # older Typer uses click itself
    from click.exceptions import ClickException, UsageError

# no --install-completion: its option is coerced through pydantic on every subcommand, ~0.2 s of imports
app = command_app(
    help="Control plane of the MLOps platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.add_typer(db.app, name="db")
app.add_typer(members.keys_app, name="keys")
app.add_typer(channels.channels_app, name="channels")
app.add_typer(channels.secrets_app, name="secrets")
app.add_typer(members.users_app, name="users")
app.add_typer(drift.app, name="drift")
app.add_typer(retention.app, name="retention")
app.command("seed")(demo.seed)
app.command("demo")(demo.demo)
app.command("register")(registry.register)
app.command("promote")(registry.promote)
app.command("history")(registry.history)
app.command("aggregate")(metrics.aggregate)
app.command("metrics")(metrics.metrics)
app.command("serve")(serve.serve)
app.command("ui")(ui.ui)


def main() -> None:
    """Entry point: run the app, mapping every error to one line on stderr and an exit code."""
    from services.client_context import client_context

    try:
        with client_context(user_agent=f"mlops-cli/{version('mlops-control-plane')}"):
            code = app(standalone_mode=False)
    except UsageError as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except MlopsError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        # only a command that used the database can raise its errors: SQLAlchemy is imported where used
        sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
        if sqlalchemy_exc is None or not isinstance(exc, sqlalchemy_exc.SQLAlchemyError):
            raise
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        typer.echo(f"error: database: {detail}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
