"""`mlops serve`: every deployment of prefect.yaml, with its schedule, served from this one process.

For an installation without a work pool or workers (one machine, a cron-like set-up): `prefect.serve` registers
each deployment with the Prefect server named by `PREFECT_API_URL` and runs its scheduled and UI-triggered runs
in subprocesses of this process. prefect.yaml stays the one list of deployments, schedules and concurrency
limits: this command reads it instead of repeating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import InvalidInput

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"


@dataclass(frozen=True)
class ServedDeployment:
    name: str
    entrypoint: str
    description: str
    tags: tuple[str, ...]
    crons: tuple[tuple[str, str], ...]  # (cron, timezone)
    concurrency: tuple[int, str] | None  # (limit, collision strategy)

    @property
    def flow_name(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1].replace("_", "-")


def plan(config: dict[str, Any]) -> list[ServedDeployment]:
    """The deployments of a parsed prefect.yaml; InvalidInput naming the first malformed one."""
    planned = []
    for i, d in enumerate(config.get("deployments") or []):
        if not isinstance(d, dict) or not d.get("name") or ":" not in str(d.get("entrypoint", "")):
            raise InvalidInput(f"prefect.yaml deployment #{i + 1} needs a name and an entrypoint path.py:function")
        crons = tuple((s["cron"], s.get("timezone", "UTC")) for s in d.get("schedules") or [] if s.get("active", True))
        limit = d.get("concurrency_limit")
        concurrency = (int(limit["limit"]), str(limit.get("collision_strategy", "ENQUEUE"))) if limit else None
        planned.append(
            ServedDeployment(
                name=str(d["name"]),
                entrypoint=str(d["entrypoint"]),
                description=str(d.get("description", "")),
                tags=tuple(d.get("tags") or ()),
                crons=crons,
                concurrency=concurrency,
            )
        )
    if not planned:
        raise InvalidInput("prefect.yaml lists no deployments")
    return planned


def serve(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Serve only these deployments (FLOW/NAME); repeatable.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Flow runs at once (default: no limit).")] = None,
) -> None:
    """Serve every flow of prefect.yaml with its schedule from this process (no work pool or worker needed).

    Needs PREFECT_API_URL (a Prefect server) and the same environment as a worker (DATABASE_URL, ...).
    Ctrl-C stops it; runs in progress finish first."""
    import yaml

    planned = plan(yaml.safe_load(PREFECT_YAML.read_text()))
    if only:
        known = {f"{p.flow_name}/{p.name}" for p in planned}
        unknown = sorted(set(only) - known)
        if unknown:
            raise InvalidInput(f"unknown deployment {unknown[0]!r}; one of: {', '.join(sorted(known))}")
        planned = [p for p in planned if f"{p.flow_name}/{p.name}" in only]

    from prefect import serve as prefect_serve
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    root = PREFECT_YAML.parent
    deployments = []
    for p in planned:
        flow = load_flow_from_entrypoint(str(root / p.entrypoint))
        deployments.append(
            flow.to_deployment(
                name=p.name,
                description=p.description,
                tags=list(p.tags),
                schedules=[CronSchedule(cron=cron, timezone=tz) for cron, tz in p.crons] or None,
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=p.concurrency[0], collision_strategy=ConcurrencyLimitStrategy(p.concurrency[1])
                )
                if p.concurrency
                else None,
            )
        )
    prefect_serve(*deployments, limit=limit)
