"""The README's command examples match the CLI: every `mlops ...` line names a real command and only options
that command has (a renamed command or option fails here before a user copies the example); the permissions
table is the rules table of `services/access.py`."""

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
                # written as they run from a fresh clone: `.venv/bin/mlops ...`
                if part.startswith((".venv/bin/mlops ", "mlops ")):
                    commands.append(part.removeprefix(".venv/bin/"))
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


def permission_rows() -> list[tuple[set[str], set[str], set[str]]]:
    """(organization roles, project roles, scopes) of each row of the README's permissions table."""
    text = README.read_text()
    table = text[text.index("| action | organization roles | project roles | API-key scope |") :].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        _, org, project, scope = (cell.strip() for cell in line.strip("|").split("|"))
        scopes: list[str] = []
        for token in re.findall(r"`([^`]+)`", scope):
            # "`deployments:rollout:development` / `:staging`": a short form keeps the previous scope's prefix
            scopes.append(scopes[-1].rsplit(":", 1)[0] + token if token.startswith(":") else token)
        roles = [set() if cell == "—" else {r.strip() for r in cell.split(",")} for cell in (org, project)]
        rows.append((roles[0], roles[1], set(scopes)))
    return rows


def test_the_permissions_table_is_the_rules_table():
    from services.access import RULES

    rows = permission_rows()
    for action, rule in RULES.items():
        matching = [(org, project) for org, project, scopes in rows if rule.scope in scopes]
        assert matching, f"{action}: scope {rule.scope} is not in the README's table"
        assert all(org == set(rule.org_roles) for org, _ in matching), action
        assert all(project == set(rule.project_roles) for _, project in matching), action
    assert set().union(*(scopes for _, _, scopes in rows)) == {rule.scope for rule in RULES.values()}


def test_commands_are_written_as_they_run_from_a_fresh_clone():
    bare = [
        line
        for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", README.read_text(), flags=re.S)
        for line in block.splitlines()
        if re.match(r"\s*(mlops|prefect|alembic) ", line)
    ]
    assert not bare, "write these as .venv/bin/...:\n" + "\n".join(bare)
