"""The README's command examples match the CLI: every `mlops ...` line names a real command and only options
that command has (a renamed command or option fails here before a user copies the example)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mlops.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """Every `mlops ...` command line in the README's shell blocks, continuation lines joined."""
    commands: list[str] = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", README.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                if part.startswith("mlops "):
                    commands.append(part)
    return commands


COMMANDS = readme_commands()


def resolve(tokens: list[str]) -> tuple[list[str], Any]:
    """The command path the tokens name and its click command (Typer vendors click: duck-typed)."""
    command = typer.main.get_command(app)
    path: list[str] = []
    for token in tokens:
        if token in getattr(command, "commands", {}):
            command = command.commands[token]
            path.append(token)
        else:
            break
    return path, command


def test_the_readme_has_command_examples():
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_exists_with_its_options(line):
    tokens = shlex.split(line.replace("$(", "").replace(")", ""))[1:]
    path, command = resolve(tokens)
    assert path, f"no such command: {line}"
    options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    options |= {"--help"}
    used = {t.split("=")[0] for t in tokens if t.startswith("--")}
    assert used <= options, f"{line}: unknown option(s) {sorted(used - options)} of `mlops {' '.join(path)}`"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
