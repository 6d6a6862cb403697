"""The `mlops` command line: database, seed and demo, keys, channels, secrets, registry, drift, metrics, retention,
notifications (dispatch, rules, deliveries, alerts).

Errors print one line on stderr and exit 2 for bad input, 3 for a refused permission, 1 for a failed
operation, 4 when the database, the Prefect API or another service we depend on is unreachable, 0 for
success. Commands import what they use when they run, so `mlops --help` and the small commands do not pay for
loading Prefect.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import typer

from core.errors import MlopsError
from mlops.cli import (
    channels,
    db,
    demo,
    drift,
    events,
    members,
    metrics,
    notifications,
    registry,
    retention,
    rollout,
    serve,
    ui,
)
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
app.add_typer(rollout.deployments_app, name="deployments")
app.add_typer(notifications.rules_app, name="rules")
app.add_typer(notifications.deliveries_app, name="deliveries")
app.add_typer(notifications.alerts_app, name="alerts")
app.command("seed")(demo.seed)
app.command("demo")(demo.demo)
app.command("register")(registry.register)
app.command("promote")(registry.promote)
app.command("history")(registry.history)
app.command("aggregate")(metrics.aggregate)
app.command("metrics")(metrics.metrics)
app.command("serve")(serve.serve)
app.command("events")(events.events)
app.command("rollout")(rollout.rollout)
app.command("rollback")(rollout.rollback)
app.command("terminate")(rollout.terminate)
app.command("dispatch")(notifications.dispatch)
app.command("ui")(ui.ui)


def main() -> None:
    """Entry point: run the app, mapping every error to one line on stderr and an exit code.

    Bad input and refusals come as `MlopsError`s (exit 2/3/1, 4 for infrastructure); database errors arrive
    already translated (`db.errors`, where sessions end: the same error a deployment run reports); anything else
    is a bug: one line and exit 1, with the traceback only under `--debug` (anywhere on the command line).
    """
    from services.client_context import client_context

    args = sys.argv[1:]
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        with client_context(user_agent=f"mlops-cli/{version('mlops-control-plane')}"):
            code = app(args=args, prog_name="mlops", standalone_mode=False)
    except UsageError as exc:
        if not exc.format_message().strip():  # no command given: the help was printed instead
            sys.exit(2)
        _fail(exc.format_message(), 2)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        _fail("aborted", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except MlopsError as exc:
        _fail(str(exc), exc.exit_code, debug=debug)
    except Exception as exc:  # a bug or an environment we did not foresee: still one line, no traceback
        detail = (str(exc).splitlines() or [""])[0]
        _fail(f"{type(exc).__name__}: {detail} (rerun with --debug for the traceback)", 1, debug=debug)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, *, debug: bool = False) -> None:
    """One line on stderr (any API key in it cut to its prefix), then exit `code`."""
    from services.apikeys import redact_keys

    if debug:
        import traceback

        traceback.print_exc()
    line = " ".join(message.split()) or "failed"
    typer.echo(f"error: {redact_keys(line)}", err=True)
    sys.exit(code)
