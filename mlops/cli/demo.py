"""`mlops seed` and `mlops demo`."""

from __future__ import annotations

import os

import typer


def seed() -> None:
    """Load the demo organization 'acme' (idempotent: a second run changes nothing)."""
    from demo.seed import seed_demo

    summary = seed_demo()
    typer.echo(summary.describe())


def demo() -> None:
    """Migrate, seed, then run every flow once and print what each did."""
    # the demo narrates each flow itself; Prefect's own log lines (and the rejected run's traceback) would bury it
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    # the demo's receivers listen on 127.0.0.1, which channels may not reach by default (services.netguard)
    os.environ.setdefault("MLOPS_ALLOWED_NOTIFY_HOSTS", "127.0.0.1")
    from demo.run import run_demo

    run_demo(typer.echo)
