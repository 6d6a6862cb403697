"""The local-directory backend of the artifact store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from core.errors import Conflict, NotFound, PermissionDenied
from services.storage.keys import (
    DELETE_BATCH,
    MAX_PAGE_SIZE,
    RESERVED_PREFIX,
    TEMP_PREFIX,
    Data,
    ObjectInfo,
    batches,
    check_page_size,
    check_source,
    chunks,
    sha256_stream,
    validate_key,
    validate_prefix,
)
from services.storage.store import ArtifactStore

# --- local backend ------------------------------------------------------------------------------------------


class LocalArtifactStore(ArtifactStore):
    """Objects as files under a root directory: `<root>/<key>`.

    Writes stream to a temporary file in the target directory, are fsynced and renamed into place with
    `os.replace`, so readers see the old or the new content, never a part. `content_type` is not recorded.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def uri_for(self, key: str) -> str:
        return self._path(key).as_uri()

    def put(self, key: str, data: Data, *, content_type: str | None = None) -> ObjectInfo:
        path = self._path(key)
        source = check_source(data)
        fd, temp = self._temp_file(key, path.parent)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks(source):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fchmod(out.fileno(), 0o644)
                os.fsync(out.fileno())
            try:
                os.replace(temp, path)
            except IsADirectoryError:
                raise Conflict(
                    f"cannot store {self.uri_for(key)}: other keys start with {key + '/'!r}, "
                    "and a key cannot also be a prefix"
                ) from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            self._prune(path.parent)
            raise
        _fsync_directory(path.parent)
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return ObjectInfo(key, size, digest.hexdigest(), modified, self.uri_for(key))

    def _temp_file(self, key: str, directory: Path) -> tuple[int, str]:
        """Create the parent folders and a temporary file in them; retried if a delete prunes them meanwhile."""
        for attempt in range(3):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise Conflict(
                    f"cannot store {self.uri_for(key)}: a parent of it is an object, and a key cannot also be a prefix"
                ) from None
            try:
                return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _prune(self, directory: Path) -> None:
        """Remove empty folders from `directory` up to (not including) the root."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _open(self, key: str) -> BinaryIO:
        try:
            stream = self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no artifact at {self.uri_for(key)}") from None
        except PermissionError:
            raise PermissionDenied(f"cannot read {self.uri_for(key)}: permission denied") from None
        return cast(BinaryIO, stream)

    def get(self, key: str) -> bytes:
        with self._open(key) as stream:
            return stream.read()

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self._open(key)

    def stat(self, key: str) -> ObjectInfo:
        with self._open(key) as stream:
            info = os.fstat(stream.fileno())
            size, sha256 = sha256_stream(stream)
        modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
        return ObjectInfo(key, size, sha256, modified, self.uri_for(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> Iterator[ObjectInfo]:
        # Reads one folder at a time; `page_size` only matters to S3, it is checked for the same contract.
        validate_prefix(prefix)
        check_page_size(page_size)
        folder, _, name_start = prefix.rpartition("/")
        directory = self.root.joinpath(*folder.split("/")) if folder else self.root
        return self._walk(directory, folder, name_start)

    def _walk(self, directory: Path, folder: str, name_start: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in scan
                    if entry.name.startswith(name_start) and not entry.name.startswith(RESERVED_PREFIX)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting folders as "name/" makes a depth-first walk yield keys in S3 (code point) order:
        # "a.txt" < "a/b" < "a0" because "." < "/" < "0".
        entries.sort(key=lambda pair: pair[0])
        for sort_name, entry in entries:
            key = f"{folder}/{entry.name}" if folder else entry.name
            if sort_name.endswith("/"):
                yield from self._walk(Path(entry.path), key, "")
            elif entry.is_file(follow_symlinks=False) and "\\" not in entry.name:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted since the folder was read
                    continue
                modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
                yield ObjectInfo(key, info.st_size, None, modified, Path(entry.path).as_uri())

    def delete(self, keys: Iterable[str]) -> int:
        deleted = 0
        for batch in batches(keys, DELETE_BATCH):
            paths = [self._path(key) for key in batch]
            for path in paths:
                try:
                    path.unlink()
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    continue
                deleted += 1
                self._prune(path.parent)
        return deleted


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
