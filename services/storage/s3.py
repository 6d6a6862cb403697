"""The S3 backend of the artifact store (boto3): the only module that talks to S3."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

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

from core.errors import Conflict, InvalidInput, MlopsError, NotFound, PermissionDenied, TransientError
from services.storage.keys import (
    CHUNK_SIZE,
    DELETE_BATCH,
    MAX_PAGE_SIZE,
    Data,
    MiB,
    ObjectInfo,
    T,
    batches,
    check_page_size,
    check_source,
    chunks,
    parse_s3_uri,
    sha256_stream,
    validate_key,
    validate_prefix,
)
from services.storage.store import ArtifactStore

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
        self.bucket, self.prefix = parse_s3_uri(uri)
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
        source = check_source(data)
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
        validate_prefix(prefix)
        check_page_size(page_size)
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
        for batch in batches(keys, DELETE_BATCH):
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
            size, sha256 = sha256_stream(stream)
            yield functools.partial(_reopen, stream), size, sha256
    else:
        with tempfile.TemporaryFile() as spool:
            digest = hashlib.sha256()
            size = 0
            for chunk in chunks(source):
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
