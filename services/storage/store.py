"""The artifact store interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from services.storage.keys import MAX_PAGE_SIZE, Data, ObjectInfo

# --- the interface ------------------------------------------------------------------------------------------


class ArtifactStore(ABC):
    """Objects addressed by key under one root URI; see the module docstring for the key rules."""

    uri: str  # root URI of the store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @abstractmethod
    def put(self, key: str, data: Data, *, content_type: str | None = None) -> ObjectInfo:
        """Store `data` (bytes, a binary file object read to its end, or a Path) at `key`, replacing any object.

        All or nothing: a failed put leaves the previous object (or none) and no temporary data. Errors raised
        by the source itself propagate unchanged. Raises InvalidInput, PermissionDenied, Conflict,
        TransientError.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole content of `key`. Raises NotFound, InvalidInput, PermissionDenied, TransientError."""

    @abstractmethod
    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming reader of `key` with bounded memory: `with store.open(key) as f: f.read(n)`.

        Raises NotFound (at the call, not on the first read), InvalidInput, PermissionDenied, TransientError.
        """

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, sha256 and modification time of `key`. Raises NotFound, InvalidInput, TransientError."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at `key` (a prefix of other keys is not an object)."""

    @abstractmethod
    def list(self, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a string prefix, not a folder), sorted by key.

        Fetched lazily, `page_size` keys at a time on S3 (1 to 1000). `sha256` is None in listings.
        """

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> int:
        """Delete `keys` in batches of 1000; missing keys are not an error. Returns how many were deleted.

        The local backend counts the files it removed. S3 reports every key of a DeleteObjects request as
        deleted, present or not, so the S3 backend counts the distinct keys it sent that did not fail.
        Each batch is validated before it is sent: an invalid key raises InvalidInput, after earlier batches
        were deleted.
        """

    @abstractmethod
    def uri_for(self, key: str) -> str:
        """The full URI of the object at `key` (which `resolve()` maps back to a store and `key`)."""
