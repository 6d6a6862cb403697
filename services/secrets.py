"""Application-level encryption of channel secrets (Fernet), with key rotation.

Keys come from `MLOPS_SECRET_KEY` (comma-separated Fernet keys, the first encrypts, all decrypt) or, for the
embedded default, from `MLOPS_HOME/secret.key` (one key per line, newest first, mode 0600). The key file is
created only on purpose (`ensure_key_file`: the first `mlops db upgrade`, `mlops seed`/`demo`, `mlops secrets
init`), never as a side effect of reading: a command run with another MLOPS_HOME would otherwise make a second
key that decrypts nothing. Plaintext secrets exist only in memory; `Redacted` keeps them out of reprs, logs and
tracebacks.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.errors import InvalidInput, MlopsError
from core.settings import mlops_home

KEY_FILE = "secret.key"


class SecretError(MlopsError):
    """A secret could not be decrypted (wrong or missing key). Never carries the secret itself."""


class MissingSecretKey(InvalidInput):
    """No key is configured: neither MLOPS_SECRET_KEY nor a key file under MLOPS_HOME."""


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


def _configured() -> str:
    return os.environ.get("MLOPS_SECRET_KEY", "").strip()


def secret_box() -> SecretBox:
    """The configured keys: MLOPS_SECRET_KEY, else the key file under MLOPS_HOME.

    Raises MissingSecretKey (one line naming both settings) when there is neither; never creates a key.
    """
    configured = _configured()
    if configured:
        return SecretBox(parse_keys(configured))
    path = key_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingSecretKey(
            f"no secret key: set MLOPS_SECRET_KEY, or MLOPS_HOME to the directory holding {KEY_FILE} "
            f"(there is none in {path.parent}; `mlops secrets init` creates one)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MissingSecretKey(f"cannot read the secret key file {path}: {exc}") from None
    keys = parse_keys(text)
    if not keys:
        raise MissingSecretKey(f"the secret key file {path} holds no key; set MLOPS_SECRET_KEY or restore it")
    return SecretBox(keys)


def ensure_key_file() -> Path | None:
    """Create the key file under MLOPS_HOME unless MLOPS_SECRET_KEY is set or the file exists; returns its path
    when it created one. Only for the set-up commands (first `db upgrade`, `seed`/`demo`, `secrets init`)."""
    if _configured():
        return None
    path = key_file()
    if path.exists():
        return None
    _write_key_file(path, [Fernet.generate_key()], exclusive=True)
    return path


def rotation_box() -> tuple[SecretBox, Path, bytes]:
    """For `mlops secrets rotate`: (the current keys with a new one first, the key file, its current bytes to
    restore should the re-encryption fail). Nothing is written here."""
    if _configured():
        raise InvalidInput(
            "MLOPS_SECRET_KEY is set: put a new key first in it (keep the old ones after it), then run "
            "`mlops secrets reencrypt`"
        )
    current = secret_box()  # MissingSecretKey: rotating a key that does not exist would orphan every secret
    path = key_file()
    return SecretBox((Fernet.generate_key(), *current.keys)), path, path.read_bytes()


def write_key_file(path: Path, keys: tuple[bytes, ...]) -> None:
    _write_key_file(path, list(keys))


def restore_key_file(path: Path, content: bytes) -> None:
    """Put back the key file as it was (an all-or-nothing rotation that failed)."""
    _write_key_file(path, list(parse_keys(content.decode())))


def _write_key_file(path: Path, keys: list[bytes], *, exclusive: bool = False) -> None:
    """Write the keys atomically (a reader sees the old file or the new one, never a partial one); with
    `exclusive`, only when no key file exists yet (two first commands at once: both keep the first key)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(k.decode() for k in keys) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        if exclusive:
            with suppress(FileExistsError):  # the other one's key wins
                os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
