"""Application-level encryption of channel secrets (Fernet), with key rotation.

Keys come from `MLOPS_SECRET_KEY` (comma-separated Fernet keys, the first encrypts, all decrypt) or, for the
embedded default, from `MLOPS_HOME/secret.key` (one key per line, newest first, created with mode 0600).
Plaintext secrets exist only in memory; `Redacted` keeps them out of reprs, logs and tracebacks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.errors import InvalidInput, MlopsError
from core.settings import mlops_home

KEY_FILE = "secret.key"


class SecretError(MlopsError):
    """A secret could not be decrypted (wrong or missing key). Never carries the secret itself."""


class Redacted(str):
    """A string whose repr and str-in-containers never show the value."""

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True)
class SecretBox:
    """Encrypts with the newest key, decrypts with any configured key."""

    keys: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"SecretBox({len(self.keys)} key(s))"

    @property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            raise SecretError("cannot decrypt a stored secret: none of the configured keys matches") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt `token` under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretError("cannot re-encrypt a stored secret: none of the configured keys matches") from None


def parse_keys(text: str) -> tuple[bytes, ...]:
    """Fernet keys from a comma- or newline-separated list; InvalidInput for a malformed one."""
    keys = tuple(k.strip().encode() for k in text.replace(",", "\n").splitlines() if k.strip())
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError:
            raise InvalidInput(
                f"secret key #{index + 1} is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from None
    return keys


def key_file() -> Path:
    return mlops_home() / KEY_FILE


def secret_box() -> SecretBox:
    """The configured keys: MLOPS_SECRET_KEY, else the key file under MLOPS_HOME (created on first use)."""
    configured = os.environ.get("MLOPS_SECRET_KEY", "").strip()
    if configured:
        return SecretBox(parse_keys(configured))
    path = key_file()
    if not path.exists():
        _write_key_file(path, [Fernet.generate_key()])
    return SecretBox(parse_keys(path.read_text()))


def add_key_to_file() -> SecretBox:
    """Prepend a new key to the key file (the old ones keep decrypting); for `mlops secrets rotate`."""
    if os.environ.get("MLOPS_SECRET_KEY", "").strip():
        raise InvalidInput(
            "MLOPS_SECRET_KEY is set: put a new key first in it (keep the old ones after it), then rerun"
        )
    path = key_file()
    old = parse_keys(path.read_text()) if path.exists() else ()
    _write_key_file(path, [Fernet.generate_key(), *old])
    return secret_box()


def _write_key_file(path: Path, keys: list[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(k.decode() for k in keys) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
