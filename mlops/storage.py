"""The artifact store: one interface over a local directory or an S3 bucket, chosen by URI.

Only this module talks to S3 or the filesystem for artifacts. `open_store()` picks the backend from a URI:

- `s3://bucket/prefix` -> `S3ArtifactStore` (boto3; honours `AWS_ENDPOINT_URL` and the usual `AWS_*` variables);
- `file:///abs/dir` or a plain path -> `LocalArtifactStore`;
- nothing -> `MLOPS_ARTIFACT_URI`, else the embedded default `MLOPS_HOME/artifacts/mlops`.

The local default is laid out as `<root>/<bucket>/<key>` with bucket `mlops`, so `rclone serve s3
MLOPS_HOME/artifacts` serves the same objects under the same keys at `s3://mlops/<key>`.

Keys are relative `/`-separated paths in canonical form (no empty, `.` or `..` segment, no leading or trailing
`/`, no backslash, no NUL) so that they name the same file on every backend. Segments starting with
`.rclone_temp_` are reserved: rclone hides them from listings, and the local backend names its temporary files
that way for the same reason.

Where each backend gets `ObjectInfo.sha256` (the hex SHA-256 of the content, recorded at put time):

- S3: the `x-amz-meta-sha256` metadata written by `put`, read back by `stat`. `list` returns `sha256=None`
  (it would cost one HEAD per object). Objects written by other tools have no such metadata, and rclone keeps
  object metadata in memory only, so after an rclone restart `stat` returns `sha256=None` too.
- Local: computed by `stat` by streaming the file (no sidecar file in the key space, no xattrs, which many
  filesystems and copies drop). `list` returns `sha256=None`.

Known limits of `rclone serve s3` (the test server, and the way to serve `MLOPS_HOME/artifacts` over S3) and of
the local backend:

- A key cannot also be a prefix of other keys (`a` and `a/b` cannot coexist), because objects are files and
  prefixes are folders. Locally such a put raises `Conflict`; rclone answers `InternalError`, which surfaces as
  `TransientError` after the retries.
- rclone 1.75.2 deletes the object `a` when asked to delete the absent key `a/b` (the local backend does not);
  the store does not guard against it, as that would cost a HEAD per key on real S3.
- rclone keeps object metadata (hence `sha256`) in memory only, see above.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import os
import random
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import unquote, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from mlops.errors import Conflict, InvalidInput, MlopsError, NotFound, PermissionDenied, TransientError
from mlops.settings import mlops_home

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


def _validate_prefix(prefix: str) -> str:
    """A listing prefix is any start of a valid key: its complete segments must be valid key segments."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str) or "\x00" in prefix or "\\" in prefix or prefix.startswith("/"):
        raise InvalidInput(f"listing prefix {prefix!r} must be relative and contain no backslash or NUL")
    for segment in prefix.split("/")[:-1]:
        _check_segment(prefix, segment)
    return prefix


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# --- sources ------------------------------------------------------------------------------------------------


def _check_source(data: Data) -> Data:
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


def _chunks(data: Data) -> Iterator[bytes]:
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


def _sha256_stream(stream: BinaryIO) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for chunk in _read_chunks(stream):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


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
        source = _check_source(data)
        fd, temp = self._temp_file(key, path.parent)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(source):
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
            size, sha256 = _sha256_stream(stream)
        modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
        return ObjectInfo(key, size, sha256, modified, self.uri_for(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> Iterator[ObjectInfo]:
        # Reads one folder at a time; `page_size` only matters to S3, it is checked for the same contract.
        _validate_prefix(prefix)
        _check_page_size(page_size)
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
        for batch in _batches(keys, DELETE_BATCH):
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


# --- S3 backend ---------------------------------------------------------------------------------------------

_RETRYABLE_BOTO = (BotoConnectionError, HTTPClientError, IncompleteReadError)
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidToken",
}
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
}


class S3ArtifactStore(ArtifactStore):
    """Objects in an S3 bucket under an optional prefix: `s3://bucket/prefix/<key>`.

    Credentials and region come from boto3's usual sources (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    `AWS_DEFAULT_REGION`, profiles); the endpoint from `endpoint_url`, else `AWS_ENDPOINT_URL_S3` or
    `AWS_ENDPOINT_URL`, else AWS. A custom endpoint uses path-style addressing. Checksums are only sent and
    validated where the API requires them (what S3-compatible servers such as rclone understand); integrity
    is the `sha256` metadata.

    Each call is one attempt of boto3 (its own retries are off): connection errors, 5xx and throttling are
    retried here up to `max_attempts` times with exponential backoff and jitter from `backoff_seconds`, then
    raise TransientError. A put is retried whole, from a re-readable copy of the source. Objects smaller than
    `multipart_threshold` go up in one PutObject, larger ones in parts of `multipart_chunksize` (boto3's
    transfer manager, which aborts a failed multipart upload, so no part ever becomes visible).
    """

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_concurrency: int = 4,
        max_attempts: int = 5,
        backoff_seconds: float = 0.25,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.bucket, self.prefix = _parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if max_attempts < 1:
            raise InvalidInput(f"max_attempts must be at least 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        config = Config(
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self._client: Any = boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=config)
        except ValueError as exc:  # e.g. a malformed endpoint URL
            raise InvalidInput(f"cannot use S3 endpoint {_safe_endpoint(endpoint or '')}: {exc}") from None
        self.endpoint = _safe_endpoint(self._client.meta.endpoint_url)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=max_concurrency > 1,
            preferred_transfer_client="classic",
        )

    # keys and URIs

    def _full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(validate_key(key))}"

    # calls, retries and errors

    def _call(self, action: str, fn: Callable[[], T], key: str | None = None) -> T:
        """Run one S3 operation, retrying the transient failures; boto errors become MlopsErrors."""
        target = self.uri_for(key) if key is not None else self.uri
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except ClientError as exc:
                error = self._client_error(exc, action, target)
                if not isinstance(error, TransientError) or attempt == self.max_attempts:
                    raise error from exc
            except BotoCoreError as exc:
                if not isinstance(exc, _RETRYABLE_BOTO) or isinstance(exc, SSLError):
                    raise self._botocore_error(exc, action, target) from exc
                if attempt == self.max_attempts:
                    raise TransientError(
                        f"S3 endpoint {self.endpoint} unreachable: {action} {target} failed after "
                        f"{attempt} attempt(s) ({type(exc).__name__})"
                    ) from exc
            time.sleep(random.uniform(0, self.backoff_seconds * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _client_error(self, exc: ClientError, action: str, target: str) -> MlopsError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code}: {error['Message']}" if error.get("Message") else code
        if code == "NoSuchBucket":
            return NotFound(f"S3 bucket {self.bucket!r} does not exist at {self.endpoint} ({action} {target})")
        if code in _NOT_FOUND_CODES:
            return NotFound(f"no artifact at {target}")
        if code in _DENIED_CODES or status == 403:
            return PermissionDenied(
                f"S3 at {self.endpoint} refused {action} {target} ({code}): check the AWS credentials"
            )
        if code in _TRANSIENT_CODES or status >= 500:
            return TransientError(f"S3 endpoint {self.endpoint} failed {action} {target} ({detail})")
        if status == 409:
            return Conflict(f"S3 refused {action} {target} ({detail})")
        if 400 <= status < 500:
            return InvalidInput(f"S3 refused {action} {target} ({detail})")
        return MlopsError(f"S3 error on {action} {target} at {self.endpoint} ({detail})")

    def _botocore_error(self, exc: BotoCoreError, action: str, target: str) -> MlopsError:
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return PermissionDenied(
                f"no usable AWS credentials for {action} {target}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(exc, ParamValidationError):
            return InvalidInput(f"invalid S3 request for {action} {target}: {exc}")
        return MlopsError(f"S3 error on {action} {target} at {self.endpoint} ({type(exc).__name__})")

    # operations

    def put(self, key: str, data: Data, *, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        source = _check_source(data)
        with _reopenable_copy(source) as (reopen, size, sha256):
            extra: dict[str, Any] = {"Metadata": {"sha256": sha256}}
            if content_type:
                extra["ContentType"] = content_type

            def upload() -> None:
                with reopen() as body:  # a new file object per attempt: boto3 closes it when an upload fails
                    if size < self._transfer.multipart_threshold:  # one request, no transfer threads
                        self._client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=body, **extra)
                    else:
                        self._client.upload_fileobj(
                            body, self.bucket, self._full_key(key), ExtraArgs=extra, Config=self._transfer
                        )

            self._call("put", upload, key)
        return ObjectInfo(key, size, sha256, None, self.uri_for(key))

    def _get_object(self, key: str) -> dict[str, Any]:
        return self._client.get_object(Bucket=self.bucket, Key=self._full_key(key))

    def get(self, key: str) -> bytes:
        validate_key(key)
        return self._call("get", lambda: self._get_object(key)["Body"].read(), key)

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        validate_key(key)
        response = self._call("open", lambda: self._get_object(key), key)
        raw = _S3Reader(response["Body"], self.endpoint, self.uri_for(key))
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=CHUNK_SIZE))

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        head = self._call("stat", lambda: self._client.head_object(Bucket=self.bucket, Key=self._full_key(key)), key)
        metadata = {name.lower(): value for name, value in head.get("Metadata", {}).items()}
        modified = head["LastModified"].astimezone(UTC) if head.get("LastModified") else None
        return ObjectInfo(key, int(head["ContentLength"]), metadata.get("sha256"), modified, self.uri_for(key))

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> Iterator[ObjectInfo]:
        _validate_prefix(prefix)
        _check_page_size(page_size)
        return self._pages(prefix, page_size)

    def _pages(self, prefix: str, page_size: int) -> Iterator[ObjectInfo]:
        # ListObjectsV2 with ContinuationToken, one retried call per page (a paginator cannot resume a page).
        base = f"{self.prefix}/" if self.prefix else ""
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + prefix, "MaxKeys": page_size}
        while True:
            page = self._call("list", functools.partial(self._client.list_objects_v2, **request))
            for item in page.get("Contents", []):
                key = item["Key"][len(base) :]
                if not key or key.endswith("/"):  # folder markers some tools write
                    continue
                modified = item["LastModified"].astimezone(UTC) if item.get("LastModified") else None
                yield ObjectInfo(key, int(item["Size"]), None, modified, f"s3://{self.bucket}/{item['Key']}")
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, keys: Iterable[str]) -> int:
        deleted = 0
        for batch in _batches(keys, DELETE_BATCH):
            unique = list(dict.fromkeys(validate_key(key) for key in batch))
            request = {"Objects": [{"Key": self._full_key(key)} for key in unique], "Quiet": True}
            response = self._call(
                "delete", functools.partial(self._client.delete_objects, Bucket=self.bucket, Delete=request)
            )
            errors = response.get("Errors", [])
            if errors:
                raise self._delete_error(errors, len(unique))
            deleted += len(unique)
        return deleted

    def _delete_error(self, errors: list[dict[str, Any]], sent: int) -> MlopsError:
        codes = {str(error.get("Code", "")) for error in errors}
        first = errors[0]
        message = (
            f"S3 at {self.endpoint} did not delete {len(errors)} of {sent} keys in {self.uri} "
            f"(first s3://{self.bucket}/{first.get('Key', '')}: {first.get('Code', '')})"
        )
        if codes & _DENIED_CODES:
            return PermissionDenied(message)
        if codes & _TRANSIENT_CODES:
            return TransientError(message)
        return MlopsError(message)


class _S3Reader(io.RawIOBase):
    """A raw reader over a botocore StreamingBody that turns connection failures into TransientError."""

    def __init__(self, body: Any, endpoint: str, uri: str) -> None:
        super().__init__()
        self._body = body
        self._endpoint = endpoint
        self._uri = uri

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except BotoCoreError as exc:
            raise TransientError(
                f"S3 endpoint {self._endpoint}: reading {self._uri} failed ({type(exc).__name__})"
            ) from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


@contextlib.contextmanager
def _reopenable_copy(source: Data) -> Iterator[tuple[Callable[[], BinaryIO], int, str]]:
    """(opener of the content from its start, size, sha256) of a put() source.

    S3 metadata is sent before the body, so the hash is computed first, and a retried upload reads the content
    again. Bytes are wrapped; a Path is hashed through an open file, then read again through the same file; a
    file object is spooled to an anonymous temporary file (unlinked at once, nothing is left behind) while
    being hashed.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        content = bytes(source)
        yield (lambda: io.BytesIO(content)), len(content), hashlib.sha256(content).hexdigest()
    elif isinstance(source, Path):
        with source.open("rb") as stream:
            size, sha256 = _sha256_stream(stream)
            yield functools.partial(_reopen, stream), size, sha256
    else:
        with tempfile.TemporaryFile() as spool:
            digest = hashlib.sha256()
            size = 0
            for chunk in _chunks(source):
                spool.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            spool.flush()
            yield functools.partial(_reopen, spool), size, digest.hexdigest()


def _reopen(stream: Any) -> BinaryIO:
    """A new file object on the same open file, at its start; closing it leaves `stream` open."""
    copy = os.fdopen(os.dup(stream.fileno()), "rb")
    copy.seek(0)
    return cast(BinaryIO, copy)


def _safe_endpoint(url: str) -> str:
    """An endpoint URL for messages: scheme, host and port only (never user info)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if parts.scheme else host or "(no endpoint)"


# --- URIs ---------------------------------------------------------------------------------------------------


def _scheme(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    return head.lower() if sep else ""


def _parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/path` -> ("bucket", "some/path"); the path may be empty, is never percent-decoded."""
    if _scheme(uri) != "s3":
        raise InvalidInput(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, path = uri.partition("://")[2].partition("/")
    if not bucket:
        raise InvalidInput(f"S3 URI {uri!r} names no bucket")
    path = path.strip("/")
    if path:
        validate_key(path)
    return bucket, path


def _local_path(uri: str) -> Path:
    """The absolute path named by a `file://` URI or a plain path."""
    if _scheme(uri) == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"file URI {uri!r} names a host; only local files are supported")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidInput(f"file URI {uri!r} must hold an absolute path (file:///dir)")
        return Path(os.path.abspath(path))
    if _scheme(uri):
        raise InvalidInput(f"unsupported artifact URI {uri!r}: use s3://bucket/prefix, file:///dir or a path")
    return Path(os.path.abspath(Path(uri).expanduser()))


def default_artifact_uri() -> str:
    """The embedded default store: `file://<MLOPS_HOME>/artifacts/mlops` (bucket `mlops` of `artifacts`)."""
    return (mlops_home() / "artifacts" / DEFAULT_BUCKET).as_uri()


def _configured_uri() -> str:
    return os.environ.get("MLOPS_ARTIFACT_URI") or default_artifact_uri()


def open_store(uri: str | None = None) -> ArtifactStore:
    """The store at `uri` (default: `MLOPS_ARTIFACT_URI`, else `default_artifact_uri()`). Raises InvalidInput."""
    uri = uri or _configured_uri()
    if _scheme(uri) == "s3":
        return S3ArtifactStore(uri)
    return LocalArtifactStore(_local_path(uri))


def resolve(object_uri: str) -> tuple[ArtifactStore, str]:
    """(store, key) of one object's URI: `s3://bucket/a/b.parquet`, `file:///dir/x` or a plain path.

    When the object lies inside the configured store (`open_store()`), that store and its key are returned,
    so `resolve(store.uri_for(key))` gives `key` back; otherwise the bucket's root store (S3) or the file's
    folder (local). A trailing `/` is dropped, so a prefix URI gives (store, prefix) for `store.list(prefix)`.
    Does not check that the object exists. Raises InvalidInput.
    """
    if not object_uri:
        raise InvalidInput("an artifact URI must be a non-empty string")
    configured = _configured_uri()
    if _scheme(object_uri) == "s3":
        bucket, path = _parse_s3_uri(object_uri)
        if not path:
            raise InvalidInput(f"S3 URI {object_uri!r} names a bucket, not an object")
        if _scheme(configured) == "s3":
            root_bucket, root_prefix = _parse_s3_uri(configured)
            if bucket == root_bucket and (not root_prefix or path.startswith(root_prefix + "/")):
                return S3ArtifactStore(configured), path[len(root_prefix) + 1 if root_prefix else 0 :]
        return S3ArtifactStore(f"s3://{bucket}"), path
    path = _local_path(object_uri)
    if _scheme(configured) != "s3":
        root = _local_path(configured)
        if path.is_relative_to(root) and path != root:
            return LocalArtifactStore(root), validate_key(path.relative_to(root).as_posix())
    if path.parent == path:
        raise InvalidInput(f"artifact URI {object_uri!r} names the filesystem root, not an object")
    return LocalArtifactStore(path.parent), validate_key(path.name)
