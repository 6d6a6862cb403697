"""Start-up of the `mlops` command, as CI calls it: `--help` of the command and of every subcommand (target
< 0.3 s each), and `mlops drift compare` on two 500-row CSV files end to end (target < 2 s).

Each figure is the median wall time of separate processes, with the CPU time (user + system) they used; the
machine's load average is recorded too, since other processes stretch wall time. Not an assertion anywhere:
`python -X importtime .venv/bin/mlops <command> --help` shows what a slow command imports.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, write_results

MLOPS = str(Path(sys.executable).with_name("mlops"))
REPEAT = 5
HELP_TARGET_S = 0.3
COMPARE_TARGET_S = 2.0


def command_paths() -> list[list[str]]:
    """Every command and group of the `mlops` app, as argument lists (the root first)."""
    import typer.main

    from mlops.cli import app

    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(median wall seconds, median CPU seconds, exit code) of `args` run REPEAT times after one warm-up."""
    subprocess.run(args, env=env, capture_output=True)  # warm the page cache and bytecode
    walls, cpus = [], []
    code = 0
    for _ in range(REPEAT):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        code = subprocess.run(args, env=env, capture_output=True).returncode
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus), code


def write_csvs(folder: Path) -> tuple[Path, Path]:
    from benchmarks.bench_drift import make_frames

    reference, current = make_frames(500)
    paths = folder / "reference.csv", folder / "current.csv"
    reference.to_csv(paths[0], index=False)
    current.to_csv(paths[1], index=False)
    return paths


def main() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_API_KEY", "PREFECT_API_URL")}
    load = os.getloadavg()[0]
    rows = []
    for path in command_paths():
        wall, cpu, code = timed([MLOPS, *path, "--help"], env)
        assert code == 0, path
        rows.append(
            {"command": " ".join(["mlops", *path, "--help"]), "wall_s": wall, "cpu_s": cpu, "target_s": HELP_TARGET_S}
        )
    with tempfile.TemporaryDirectory() as folder:
        reference, current = write_csvs(Path(folder))
        wall, cpu, code = timed([MLOPS, "drift", "compare", str(reference), str(current)], env)
        assert code in (0, 1)  # 1: dataset drift, as the shifted columns mean
    rows.append(
        {
            "command": "mlops drift compare (two 500-row CSV files, 25 columns)",
            "wall_s": wall,
            "cpu_s": cpu,
            "target_s": COMPARE_TARGET_S,
        }
    )
    for row in rows:
        row["ok"] = "yes" if row["wall_s"] < row["target_s"] else "NO"
    print_table(
        f"mlops start-up (median of {REPEAT} processes; load average {load:.1f} on {os.cpu_count()} CPUs)",
        ["command", "wall s", "cpu s", "target s", "under target"],
        [[r["command"], r["wall_s"], r["cpu_s"], r["target_s"], r["ok"]] for r in rows],
    )
    results = {"repeat": REPEAT, "load_average": load, "cpus": os.cpu_count(), "commands": rows}
    write_results("startup", results)
    return results
