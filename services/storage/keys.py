"""Object keys, object metadata and put() sources: the rules every backend shares."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from core.errors import InvalidInput

DEFAULT_BUCKET = "mlops"
RESERVED_PREFIX = ".rclone_temp_"  # hidden from rclone's S3 listings; never a key segment
TEMP_PREFIX = RESERVED_PREFIX + "mlops-"  # temporary files of local writes
CHUNK_SIZE = 1024 * 1024
MAX_KEY_BYTES = 1024  # the S3 limit, applied to both backends
MAX_PAGE_SIZE = 1000  # the most keys S3 returns in one ListObjectsV2 page
DELETE_BATCH = 1000  # the most keys S3 accepts in one DeleteObjects request
MiB = 1024 * 1024

Data = bytes | bytearray | memoryview | BinaryIO | Path
T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object.

    `sha256` is None where the backend cannot report it cheaply (listings; S3 objects without the metadata);
    `modified` (UTC) is None where the backend did not report it (the result of an S3 `put`).
    """

    key: str
    size: int
    sha256: str | None
    modified: datetime | None
    uri: str


# --- keys ---------------------------------------------------------------------------------------------------


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a canonical object key; raise InvalidInput saying what is wrong."""
    if not isinstance(key, str) or not key:
        raise InvalidInput("an artifact key must be a non-empty string")
    if "\x00" in key:
        raise InvalidInput(f"artifact key {key!r} contains a NUL character")
    if "\\" in key:
        raise InvalidInput(f"artifact key {key!r} contains a backslash; separate folders with '/'")
    if key.startswith("/"):
        raise InvalidInput(f"artifact key {key!r} starts with '/'; keys are relative to the store")
    if key.endswith("/"):
        raise InvalidInput(f"artifact key {key!r} ends with '/'; it names a folder, not an object")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidInput(f"artifact key {key[:40]!r}... is longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        _check_segment(key, segment)
    return key


def _check_segment(key: str, segment: str) -> None:
    if segment == "":
        raise InvalidInput(f"artifact key {key!r} contains an empty segment ('//')")
    if segment in (".", ".."):
        raise InvalidInput(f"artifact key {key!r} contains a {segment!r} segment")
    if segment.startswith(RESERVED_PREFIX):
        raise InvalidInput(f"artifact key {key!r}: names starting with {RESERVED_PREFIX!r} are reserved")


def validate_prefix(prefix: str) -> str:
    """A listing prefix is any start of a valid key: its complete segments must be valid key segments."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str) or "\x00" in prefix or "\\" in prefix or prefix.startswith("/"):
        raise InvalidInput(f"listing prefix {prefix!r} must be relative and contain no backslash or NUL")
    for segment in prefix.split("/")[:-1]:
        _check_segment(prefix, segment)
    return prefix


def check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")


def batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# --- sources ------------------------------------------------------------------------------------------------


def check_source(data: Data) -> Data:
    if isinstance(data, str):
        raise InvalidInput("put() takes bytes, a binary file object or a Path, not a str")
    if isinstance(data, Path) and not data.is_file():
        raise InvalidInput(f"put() source {data} is not a readable file")
    if not isinstance(data, bytes | bytearray | memoryview | Path) and not hasattr(data, "read"):
        raise InvalidInput(f"put() takes bytes, a binary file object or a Path, not {type(data).__name__}")
    return data


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInput("put() needs a file object opened in binary mode")
        yield bytes(chunk)


def chunks(data: Data) -> Iterator[bytes]:
    """The content of a put() source, in chunks of at most CHUNK_SIZE bytes."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])
    elif isinstance(data, Path):
        with data.open("rb") as stream:
            yield from _read_chunks(stream)
    else:
        yield from _read_chunks(data)


def sha256_stream(stream: BinaryIO) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for chunk in _read_chunks(stream):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def scheme(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    return head.lower() if sep else ""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/path` -> ("bucket", "some/path"); the path may be empty, is never percent-decoded."""
    if scheme(uri) != "s3":
        raise InvalidInput(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, path = uri.partition("://")[2].partition("/")
    if not bucket:
        raise InvalidInput(f"S3 URI {uri!r} names no bucket")
    path = path.strip("/")
    if path:
        validate_key(path)
    return bucket, path
