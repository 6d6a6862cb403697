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

M = ("register", MODEL, "9.9.9", "--artifact", "{d}/artifact.bin")

# (id, argv, stdin, extra environment, expected exit code)
CASES: list[tuple[str, tuple[str, ...], str | None, dict[str, str], int]] = [
    ("unknown command", ("nonsense",), None, {}, 2),
    ("unknown option", ("keys", "list", "--bogus"), None, {}, 2),
    ("db upgrade nonsense", ("db", "upgrade", "nonsense"), None, {}, 2),
    ("db downgrade nonsense", ("db", "downgrade", "nonsense"), None, {}, 2),
    (
        "keys: empty name",
        ("keys", "create", "--name", " ", "--user", "admin@acme.example", "--scope", "models:read", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "keys: long name",
        ("keys", "create", "--name", LONG, "--user", "admin@acme.example", "--scope", "models:read", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "keys: bad expiry",
        (
            "keys",
            "create",
            "--name",
            "k",
            "--user",
            "admin@acme.example",
            "--scope",
            "models:read",
            "--expires",
            "soon",
            *ADMIN,
        ),
        None,
        {},
        2,
    ),
    (
        "keys: expired",
        (
            "keys",
            "create",
            "--name",
            "k",
            "--user",
            "admin@acme.example",
            "--scope",
            "models:read",
            "--expires",
            "2001-01-01",
            *ADMIN,
        ),
        None,
        {},
        2,
    ),
    (
        "keys: key as user",
        ("keys", "create", "--name", "k", "--user", PASTED_KEY, "--scope", "models:read", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "keys: unknown scope",
        ("keys", "create", "--name", "k", "--user", "admin@acme.example", "--scope", "root", *ADMIN),
        None,
        {},
        2,
    ),
    ("keys: revoke a pasted key", ("keys", "revoke", PASTED_KEY, *ADMIN), None, {}, 2),
    ("keys: revoke a non-prefix", ("keys", "revoke", "abc", *ADMIN), None, {}, 2),
    ("keys: key as --as", ("keys", "list", "--org", "acme", "--as", PASTED_KEY), None, {}, 2),
    ("keys: key as MLOPS_AS", ("keys", "list", "--org", "acme"), None, {"MLOPS_AS": PASTED_KEY}, 2),
    ("keys: unknown org", ("keys", "list", "--org", "nope", "--as", "admin@acme.example"), None, {}, 2),
    (
        "channels: JSON array",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/array.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: JSON null",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/null.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: JSON number",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/number.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: JSON string",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "-", *ADMIN),
        '"x"',
        {},
        2,
    ),
    (
        "channels: not UTF-8",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/latin1.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: binary",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/binary.bin", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: missing file",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/missing.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: a directory",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: broken stdin",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "-", *ADMIN),
        "{",
        {},
        2,
    ),
    (
        "channels: metadata service",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/imds.json", *ADMIN),
        None,
        {"MLOPS_ALLOWED_NOTIFY_HOSTS": ""},
        2,
    ),
    (
        "channels: loopback slack",
        ("channels", "add", "--name", "c", "--type", "slack", "--config", "{d}/loopback_slack.json", *ADMIN),
        None,
        {"MLOPS_ALLOWED_NOTIFY_HOSTS": ""},
        2,
    ),
    (
        "channels: private teams",
        ("channels", "add", "--name", "c", "--type", "teams", "--config", "{d}/private_teams.json", *ADMIN),
        None,
        {"MLOPS_ALLOWED_NOTIFY_HOSTS": ""},
        2,
    ),
    (
        "channels: CRLF in to_addrs",
        ("channels", "add", "--name", "c", "--type", "email", "--config", "{d}/crlf_to.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: LF in from_addr",
        ("channels", "add", "--name", "c", "--type", "email", "--config", "{d}/crlf_from.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: NUL in to_addrs",
        ("channels", "add", "--name", "c", "--type", "email", "--config", "{d}/nul_to.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: boolean port",
        ("channels", "add", "--name", "c", "--type", "email", "--config", "{d}/bool_port.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: CRLF in a header",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/crlf_header.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: bad header name",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/bad_header_name.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: infinite timeout",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/inf_timeout.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: over-long URL",
        ("channels", "add", "--name", "c", "--type", "webhook", "--config", "{d}/long_url.json", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "channels: long name",
        ("channels", "add", "--name", LONG, "--type", "webhook", "--config", "-", *ADMIN),
        '{"url": "http://127.0.0.1:9/h"}',
        {},
        2,
    ),
    (
        "channels: unknown type",
        ("channels", "add", "--name", "c", "--type", "pager", "--config", "-", *ADMIN),
        "{}",
        {},
        2,
    ),
    ("channels: test unknown", ("channels", "test", "nope", *ADMIN), None, {}, 2),
    (
        "channels: viewer adds",
        (
            "channels",
            "add",
            "--name",
            "c",
            "--type",
            "webhook",
            "--config",
            "-",
            "--org",
            "acme",
            "--as",
            "viewer@acme.example",
        ),
        '{"url": "http://127.0.0.1:9/h"}',
        {},
        3,
    ),
    ("users: not an e-mail", ("users", "add", "nobody", "--first-name", "A", "--last-name", "B", *ADMIN), None, {}, 2),
    (
        "users: CRLF e-mail",
        ("users", "add", "a@acme.example\r\nBcc: x@evil.example", "--first-name", "A", "--last-name", "B", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "users: key as e-mail",
        ("users", "add", PASTED_KEY, "--first-name", "A", "--last-name", "B", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "users: long first name",
        ("users", "add", "new@acme.example", "--first-name", LONG, "--last-name", "B", *ADMIN),
        None,
        {},
        2,
    ),
    (
        "users: unknown role",
        ("users", "add", "new@acme.example", "--first-name", "A", "--last-name", "B", "--role", "god", *ADMIN),
        None,
        {},
        2,
    ),
    ("users: accept without org", ("users", "accept", "--as", "admin@acme.example"), None, {}, 2),
    (
        "register: bad reference",
        ("register", "acme/only-two", "1.0.0", "--artifact", "{d}/artifact.bin", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "register: bad version",
        ("register", MODEL, "one", "--artifact", "{d}/artifact.bin", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "register: missing artifact",
        ("register", MODEL, "9.9.9", "--artifact", "{d}/missing.bin", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    ("register: binary metrics", (*M, "--metrics", "{d}/binary.bin", "--as", "admin@acme.example"), None, {}, 2),
    ("register: latin-1 metrics", (*M, "--metrics", "{d}/latin1.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: array metrics", (*M, "--metrics", "{d}/array.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: null metrics", (*M, "--metrics", "{d}/null.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: NaN metric", (*M, "--metrics", "{d}/nan.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: infinite metric", (*M, "--metrics", "{d}/inf.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: nested infinity", (*M, "--metrics", "{d}/nested_inf.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: 1e999", (*M, "--metrics", "{d}/huge_number.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: NUL in metrics", (*M, "--metrics", "{d}/nul.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: broken metrics", (*M, "--metrics", "{d}/bad.json", "--as", "admin@acme.example"), None, {}, 2),
    ("register: number schema", (*M, "--schema", "{d}/number.json", "--as", "admin@acme.example"), None, {}, 2),
    (
        "register: binary requirements",
        (*M, "--requirements", "{d}/binary.bin", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "register: latin-1 requirements",
        (*M, "--requirements", "{d}/latin1.json", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "register: long model name",
        (
            "register",
            "acme/fraud-detection/" + LONG,
            "9.9.9",
            "--artifact",
            "{d}/artifact.bin",
            "--model-type",
            "classification",
            "--framework",
            "xgboost",
            "--as",
            "admin@acme.example",
        ),
        None,
        {},
        2,
    ),
    (
        "register: long framework",
        (
            "register",
            "acme/fraud-detection/New Model",
            "1.0.0",
            "--artifact",
            "{d}/artifact.bin",
            "--model-type",
            "classification",
            "--framework",
            LONG,
            "--as",
            "admin@acme.example",
        ),
        None,
        {},
        2,
    ),
    (
        "register: long version",
        ("register", MODEL, "1." + "9" * 60, "--artifact", "{d}/artifact.bin", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "promote: unknown stage",
        ("promote", MODEL, "1.2.0", "--to", "heaven", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "promote: unknown version",
        ("promote", MODEL, "7.7.7", "--to", "staging", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    (
        "promote: long version",
        ("promote", MODEL, "1." + "9" * 60, "--to", "staging", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    ("history: bad --at", ("history", MODEL, "--at", "yesterday", "--as", "admin@acme.example"), None, {}, 2),
    ("drift: bad --start", ("drift", "--start", "now", *ADMIN), None, {}, 2),
    ("compare: header-only current", ("drift", "compare", "{d}/good.csv", "{d}/header_only.csv"), None, {}, 2),
    ("compare: header-only reference", ("drift", "compare", "{d}/header_only.csv", "{d}/good.csv"), None, {}, 2),
    (
        "compare: negative threshold",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--threshold", "amount=-5"),
        None,
        {},
        2,
    ),
    (
        "compare: NaN threshold",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--threshold", "amount=nan"),
        None,
        {},
        2,
    ),
    (
        "compare: infinite threshold",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--threshold", "amount=inf"),
        None,
        {},
        2,
    ),
    (
        "compare: unknown threshold column",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--threshold", "nope=0.1"),
        None,
        {},
        2,
    ),
    (
        "compare: drift threshold 2",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--drift-threshold", "2"),
        None,
        {},
        2,
    ),
    (
        "compare: drift threshold nan",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--drift-threshold", "nan"),
        None,
        {},
        2,
    ),
    (
        "compare: unknown method",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--method", "amount=magic"),
        None,
        {},
        2,
    ),
    (
        "compare: html into a missing directory",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--html", "{d}/no/such/dir/r.html"),
        None,
        {},
        2,
    ),
    ("compare: binary file", ("drift", "compare", "{d}/binary.bin", "{d}/good.csv"), None, {}, 2),
    ("compare: missing file", ("drift", "compare", "{d}/missing.csv", "{d}/good.csv"), None, {}, 2),
    (
        "compare: column types array",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--column-types", "{d}/list_types.json"),
        None,
        {},
        2,
    ),
    (
        "compare: unknown column type",
        ("drift", "compare", "{d}/good.csv", "{d}/good.csv", "--column-types", "{d}/bad_types.json"),
        None,
        {},
        2,
    ),
    ("metrics: bad reference", ("metrics", "acme/x", "--env", "production", "--as", "admin@acme.example"), None, {}, 2),
    ("metrics: bad env", ("metrics", DEPLOYMENT, "--env", "prod", "--as", "admin@acme.example"), None, {}, 2),
    (
        "metrics: bad since",
        ("metrics", DEPLOYMENT, "--env", "production", "--since", "x", "--as", "admin@acme.example"),
        None,
        {},
        2,
    ),
    ("aggregate: bad since", ("aggregate", "--since", "x"), None, {}, 2),
    ("aggregate: unknown org", ("aggregate", "--org", "nope"), None, {}, 2),
    ("retention: batch size 0", ("retention", "--batch-size", "0"), None, {}, 2),
    ("retention: negative batch size", ("retention", "--batch-size", "-5"), None, {}, 2),
    ("retention: bad month", ("retention", "restore", "audit_logs", "--month", "2026-13", *ADMIN), None, {}, 2),
    (
        "retention: negative keep-days",
        ("retention", "restore", "audit_logs", "--month", "2026-01", "--keep-days", "-1", *ADMIN),
        None,
        {},
        2,
    ),
    ("env: malformed statement timeout", ("keys", "list", *ADMIN), None, {"MLOPS_STATEMENT_TIMEOUT": "banana"}, 2),
    (
        "env: MLOPS_HOME is a file",
        ("channels", "test", "ops-webhook", *ADMIN),
        None,
        {"MLOPS_HOME": "{d}/artifact.bin"},
        2,
    ),
    ("env: MLOPS_ORCHESTRATE", ("aggregate",), None, {"MLOPS_ORCHESTRATE": "sometimes"}, 2),
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


@pytest.mark.parametrize(("argv", "stdin", "extra_env", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
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
