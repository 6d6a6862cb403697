"""Every command fed bad input: one line on stderr, exit 2 (or 3), no traceback, and nothing changed.

Most cases run the CLI in-process (`mlops.cli.main` with its own argv) against one seeded database; a few run
as real processes. After each case the test compares a fingerprint of every table's rows, every file under
MLOPS_HOME (the artifact store and the key file) and the case's scratch directory with the one taken before.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from mlops.cli import main
from services.apikeys import generate_key
from tests.fixtures.cli import mlops, one_line_error

ADMIN = ("--org", "acme", "--as", "admin@acme.example")
MODEL = "acme/fraud-detection/Credit Card Fraud Model"
DEPLOYMENT = "acme/fraud-detection/fraud-api-prod"
PASTED_KEY = generate_key()[0]  # a whole API key pasted where something else belongs: never echoed
LONG = "x" * 300

FILES: dict[str, bytes] = {
    "binary.bin": bytes(range(256)) * 4,
    "latin1.json": '{"auc": 0.9, "note": "caf\xe9"}'.encode("latin-1"),
    "array.json": b"[1, 2]",
    "null.json": b"null",
    "number.json": b"3",
    "string.json": b'"url"',
    "nan.json": b'{"auc": NaN}',
    "inf.json": b'{"auc": Infinity}',
    "nested_inf.json": b'{"auc": 0.9, "by_class": {"fraud": -Infinity}}',
    "nul.json": b'{"auc": 0.9, "note": "a\\u0000b"}',
    "bad.json": b'{"auc": ',
    "huge_number.json": b'{"auc": 1e999}',
    "long_key.json": json.dumps({LONG * 4: 1.0}).encode(),
    "header_only.csv": b"amount,merchant_category\n",
    "good.csv": b"amount,merchant_category\n1.0,a\n2.0,b\n3.0,a\n4.0,b\n",
    "artifact.bin": b"a model",
    "imds.json": b'{"url": "http://169.254.169.254/latest/meta-data/"}',
    "loopback_slack.json": b'{"webhook_url": "http://localhost:6379/"}',
    "private_teams.json": b'{"webhook_url": "http://10.0.0.1/hook"}',
    "crlf_to.json": json.dumps(
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": 25,
            "from_addr": "a@acme.example",
            "to_addrs": ["x@acme.example\r\nBcc: evil@evil.example"],
        }
    ).encode(),
    "crlf_from.json": json.dumps(
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": 25,
            "from_addr": "a@acme.example\nBcc: evil@evil.example",
            "to_addrs": ["x@acme.example"],
        }
    ).encode(),
    "nul_to.json": json.dumps(
        {"smtp_host": "127.0.0.1", "smtp_port": 25, "from_addr": "a@acme.example", "to_addrs": ["x@acme.example\u0000"]}
    ).encode(),
    "bool_port.json": json.dumps(
        {"smtp_host": "127.0.0.1", "smtp_port": True, "from_addr": "a@acme.example", "to_addrs": ["x@acme.example"]}
    ).encode(),
    "crlf_header.json": json.dumps({"url": "http://127.0.0.1:9/h", "headers": {"X-A": "v\r\nX-Evil: 1"}}).encode(),
    "bad_header_name.json": json.dumps({"url": "http://127.0.0.1:9/h", "headers": {"X A:": "v"}}).encode(),
    "inf_timeout.json": b'{"url": "http://127.0.0.1:9/h", "timeout_seconds": Infinity}',
    "long_url.json": json.dumps({"url": "http://127.0.0.1:9/" + "a" * 5000}).encode(),
    "list_types.json": b'["num"]',
    "bad_types.json": b'{"amount": "vector"}',
}

AS_ADMIN = ("--as", "admin@acme.example")
KEY = ("keys", "create", "--name", "k", "--user", "admin@acme.example", "--scope", "models:read", *ADMIN)
REG = ("register", MODEL, "9.9.9", "--artifact", "{d}/artifact.bin", *AS_ADMIN)
CMP = ("drift", "compare", "{d}/good.csv", "{d}/good.csv")
NO_HOSTS = {"MLOPS_ALLOWED_NOTIFY_HOSTS": ""}
HOOK = '{"url": "http://127.0.0.1:9/h"}'


def add(config: str, channel_type: str = "webhook", name: str = "c") -> tuple[str, ...]:
    return ("channels", "add", "--name", name, "--type", channel_type, "--config", config, *ADMIN)


def new_user(email: str, *options: str) -> tuple[str, ...]:
    return ("users", "add", email, "--first-name", "A", "--last-name", "B", *options, *ADMIN)


def case(name: str, *argv: str, stdin: str | None = None, env: dict | None = None, code: int = 2):
    """One bad input: argv ("{d}" is the scratch directory), stdin, extra environment, the expected exit code."""
    return pytest.param(argv, stdin, env or {}, code, id=name)


# a later option wins over an earlier one (click), so `*KEY, "--name", " "` replaces the name
CASES = [
    case("unknown command", "nonsense"),
    case("unknown option", "keys", "list", "--bogus"),
    case("db upgrade nonsense", "db", "upgrade", "nonsense"),
    case("db downgrade nonsense", "db", "downgrade", "nonsense"),
    case("keys: empty name", *KEY, "--name", " "),
    case("keys: long name", *KEY, "--name", LONG),
    case("keys: bad expiry", *KEY, "--expires", "soon"),
    case("keys: expired", *KEY, "--expires", "2001-01-01"),
    case("keys: key as user", *KEY, "--user", PASTED_KEY),
    case("keys: unknown scope", *KEY, "--scope", "root"),
    case("keys: revoke a pasted key", "keys", "revoke", PASTED_KEY, *ADMIN),
    case("keys: revoke a non-prefix", "keys", "revoke", "abc", *ADMIN),
    case("keys: key as --as", "keys", "list", "--org", "acme", "--as", PASTED_KEY),
    case("keys: key as MLOPS_AS", "keys", "list", "--org", "acme", env={"MLOPS_AS": PASTED_KEY}),
    case("keys: unknown org", "keys", "list", "--org", "nope", *AS_ADMIN),
    case("channels: JSON array", *add("{d}/array.json")),
    case("channels: JSON null", *add("{d}/null.json")),
    case("channels: JSON number", *add("{d}/number.json")),
    case("channels: JSON string", *add("-"), stdin='"x"'),
    case("channels: not UTF-8", *add("{d}/latin1.json")),
    case("channels: binary", *add("{d}/binary.bin")),
    case("channels: missing file", *add("{d}/missing.json")),
    case("channels: a directory", *add("{d}")),
    case("channels: broken stdin", *add("-"), stdin="{"),
    case("channels: metadata service", *add("{d}/imds.json"), env=NO_HOSTS),
    case("channels: loopback slack", *add("{d}/loopback_slack.json", "slack"), env=NO_HOSTS),
    case("channels: private teams", *add("{d}/private_teams.json", "teams"), env=NO_HOSTS),
    case("channels: CRLF in to_addrs", *add("{d}/crlf_to.json", "email")),
    case("channels: LF in from_addr", *add("{d}/crlf_from.json", "email")),
    case("channels: NUL in to_addrs", *add("{d}/nul_to.json", "email")),
    case("channels: boolean port", *add("{d}/bool_port.json", "email")),
    case("channels: CRLF in a header", *add("{d}/crlf_header.json")),
    case("channels: bad header name", *add("{d}/bad_header_name.json")),
    case("channels: infinite timeout", *add("{d}/inf_timeout.json")),
    case("channels: over-long URL", *add("{d}/long_url.json")),
    case("channels: long name", *add("-", name=LONG), stdin=HOOK),
    case("channels: unknown type", *add("-", "pager"), stdin="{}"),
    case("channels: test unknown", "channels", "test", "nope", *ADMIN),
    case("channels: viewer adds", *add("-"), "--as", "viewer@acme.example", stdin=HOOK, code=3),
    case("users: not an e-mail", *new_user("nobody")),
    case("users: CRLF e-mail", *new_user("a@acme.example\r\nBcc: x@evil.example")),
    case("users: key as e-mail", *new_user(PASTED_KEY)),
    case("users: long first name", *new_user("new@acme.example", "--first-name", LONG)),
    case("users: unknown role", *new_user("new@acme.example", "--role", "god")),
    case("users: accept without org", "users", "accept", *AS_ADMIN),
    case("register: bad reference", "register", "acme/only-two", *REG[2:]),
    case("register: bad version", "register", MODEL, "one", *REG[3:]),
    case("register: long version", "register", MODEL, "1." + "9" * 60, *REG[3:]),
    case("register: missing artifact", *REG, "--artifact", "{d}/missing.bin"),
    case("register: long model name", "register", f"acme/fraud-detection/{LONG}", *REG[2:]),
    case("register: long framework", "register", "acme/fraud-detection/New", *REG[2:], "--framework", LONG),
    case("register: binary metrics", *REG, "--metrics", "{d}/binary.bin"),
    case("register: latin-1 metrics", *REG, "--metrics", "{d}/latin1.json"),
    case("register: array metrics", *REG, "--metrics", "{d}/array.json"),
    case("register: null metrics", *REG, "--metrics", "{d}/null.json"),
    case("register: NaN metric", *REG, "--metrics", "{d}/nan.json"),
    case("register: infinite metric", *REG, "--metrics", "{d}/inf.json"),
    case("register: nested infinity", *REG, "--metrics", "{d}/nested_inf.json"),
    case("register: 1e999", *REG, "--metrics", "{d}/huge_number.json"),
    case("register: NUL in metrics", *REG, "--metrics", "{d}/nul.json"),
    case("register: long metric name", *REG, "--metrics", "{d}/long_key.json"),
    case("register: broken metrics", *REG, "--metrics", "{d}/bad.json"),
    case("register: number schema", *REG, "--schema", "{d}/number.json"),
    case("register: binary requirements", *REG, "--requirements", "{d}/binary.bin"),
    case("register: latin-1 requirements", *REG, "--requirements", "{d}/latin1.json"),
    case("promote: unknown stage", "promote", MODEL, "1.2.0", "--to", "heaven", *AS_ADMIN),
    case("promote: unknown version", "promote", MODEL, "7.7.7", "--to", "staging", *AS_ADMIN),
    case("promote: long version", "promote", MODEL, "1." + "9" * 60, "--to", "staging", *AS_ADMIN),
    case("history: bad --at", "history", MODEL, "--at", "yesterday", *AS_ADMIN),
    case("drift: bad --start", "drift", "--start", "now", *ADMIN),
    case("compare: header-only current", "drift", "compare", "{d}/good.csv", "{d}/header_only.csv"),
    case("compare: header-only reference", "drift", "compare", "{d}/header_only.csv", "{d}/good.csv"),
    case("compare: negative threshold", *CMP, "--threshold", "amount=-5"),
    case("compare: NaN threshold", *CMP, "--threshold", "amount=nan"),
    case("compare: infinite threshold", *CMP, "--threshold", "amount=inf"),
    case("compare: unknown threshold column", *CMP, "--threshold", "nope=0.1"),
    case("compare: drift threshold 2", *CMP, "--drift-threshold", "2"),
    case("compare: drift threshold nan", *CMP, "--drift-threshold", "nan"),
    case("compare: unknown method", *CMP, "--method", "amount=magic"),
    case("compare: html into a missing directory", *CMP, "--html", "{d}/no/such/dir/r.html"),
    case("compare: binary file", "drift", "compare", "{d}/binary.bin", "{d}/good.csv"),
    case("compare: missing file", "drift", "compare", "{d}/missing.csv", "{d}/good.csv"),
    case("compare: column types array", *CMP, "--column-types", "{d}/list_types.json"),
    case("compare: unknown column type", *CMP, "--column-types", "{d}/bad_types.json"),
    case("metrics: bad reference", "metrics", "acme/x", "--env", "production", *AS_ADMIN),
    case("metrics: bad env", "metrics", DEPLOYMENT, "--env", "prod", *AS_ADMIN),
    case("metrics: bad since", "metrics", DEPLOYMENT, "--env", "production", "--since", "x", *AS_ADMIN),
    case("aggregate: bad since", "aggregate", "--since", "x"),
    case("aggregate: unknown org", "aggregate", "--org", "nope"),
    case("retention: batch size 0", "retention", "--batch-size", "0"),
    case("retention: negative batch size", "retention", "--batch-size", "-5"),
    case("retention: bad month", "retention", "restore", "audit_logs", "--month", "2026-13", *ADMIN),
    case(
        "retention: negative keep-days",
        "retention",
        "restore",
        "audit_logs",
        "--month",
        "2026-01",
        "--keep-days",
        "-1",
        *ADMIN,
    ),
    case("env: malformed statement timeout", "keys", "list", *ADMIN, env={"MLOPS_STATEMENT_TIMEOUT": "banana"}),
    case(
        "env: MLOPS_HOME is a file", "channels", "test", "ops-webhook", *ADMIN, env={"MLOPS_HOME": "{d}/artifact.bin"}
    ),
    case("env: MLOPS_ORCHESTRATE", "aggregate", env={"MLOPS_ORCHESTRATE": "sometimes"}),
]


def fingerprint(env: dict, scratch: Path) -> dict:
    """Every table's rows (hashed), and every file's size under MLOPS_HOME and the scratch directory."""
    engine = create_engine(env["MLOPS_MIGRATION_DATABASE_URL"], poolclass=pool.NullPool)  # superuser: sees all
    with engine.connect() as conn:
        tables = conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).all()
        rows = {
            t: conn.execute(
                text(f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM \"{t}\" x")
            ).one()
            for t in tables
        }
    engine.dispose()
    files = {
        str(p): p.stat().st_size
        for root in (Path(env["MLOPS_HOME"]), scratch)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "pgdata" not in p.parts
    }
    return {"rows": rows, "files": files}


def run_in_process(argv: list[str], stdin: str | None, capsys) -> tuple[int, str, str]:
    saved = sys.argv, sys.stdin
    sys.argv = ["mlops", *argv]
    sys.stdin = io.StringIO(stdin or "")
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv, sys.stdin = saved
    out, err = capsys.readouterr()
    return exited.value.code, out, err


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-input")
    for name, content in FILES.items():
        (directory / name).write_bytes(content)
    return directory


@pytest.mark.parametrize(("argv", "stdin", "extra_env", "code"), CASES)
def test_bad_input_is_one_line_the_right_code_and_changes_nothing(
    seeded, scratch, monkeypatch, capsys, argv, stdin, extra_env, code
):
    for name, value in seeded.items():
        monkeypatch.setenv(name, value)
    for name, value in extra_env.items():
        monkeypatch.setenv(name, value.format(d=scratch))
    before = fingerprint(seeded, scratch)
    exit_code, out, err = run_in_process([a.format(d=scratch) for a in argv], stdin, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "Traceback" not in out
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert exit_code == code, err
    assert PASTED_KEY not in err and PASTED_KEY not in out
    after = fingerprint(seeded, scratch)
    if code == 3:  # a refusal is audited, and that is all
        before["rows"].pop("audit_logs"), after["rows"].pop("audit_logs")
    assert after == before


@pytest.mark.parametrize(
    ("argv", "extra_env"),
    [
        (("db", "upgrade", "nonsense"), {}),
        (("keys", "revoke", PASTED_KEY, *ADMIN), {}),
        (("drift", "compare", "{d}/good.csv", "{d}/header_only.csv"), {}),
        (("channels", "test", "ops-webhook", *ADMIN), {"MLOPS_HOME": "{d}/artifact.bin"}),
        (("keys", "list", *ADMIN), {"MLOPS_STATEMENT_TIMEOUT": "12 parsecs"}),
    ],
)
def test_as_a_real_process(seeded, scratch, argv, extra_env):
    env = {**seeded, **{k: v.format(d=scratch) for k, v in extra_env.items()}}
    result = mlops(env, *[a.format(d=scratch) for a in argv])
    assert result.returncode == 2, result.stderr
    assert PASTED_KEY not in one_line_error(result)


def test_debug_shows_the_traceback(seeded, scratch):
    env = {**seeded, "MLOPS_HOME": str(scratch / "artifact.bin")}
    result = mlops(env, "--debug", "channels", "test", "ops-webhook", *ADMIN)
    assert result.returncode == 2 and "Traceback" in result.stderr
