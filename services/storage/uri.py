"""Artifact URIs: which store and key a URI names, and the configured store."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.errors import InvalidInput
from core.settings import mlops_home
from services.storage.keys import DEFAULT_BUCKET, parse_s3_uri, scheme, validate_key
from services.storage.local import LocalArtifactStore
from services.storage.store import ArtifactStore

# --- URIs ---------------------------------------------------------------------------------------------------


def _local_path(uri: str) -> Path:
    """The absolute path named by a `file://` URI or a plain path."""
    if scheme(uri) == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"file URI {uri!r} names a host; only local files are supported")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidInput(f"file URI {uri!r} must hold an absolute path (file:///dir)")
        return Path(os.path.abspath(path))
    if scheme(uri):
        raise InvalidInput(f"unsupported artifact URI {uri!r}: use s3://bucket/prefix, file:///dir or a path")
    return Path(os.path.abspath(Path(uri).expanduser()))


def default_artifact_uri() -> str:
    """The embedded default store: `file://<MLOPS_HOME>/artifacts/mlops` (bucket `mlops` of `artifacts`)."""
    return (mlops_home() / "artifacts" / DEFAULT_BUCKET).as_uri()


def _configured_uri() -> str:
    return os.environ.get("MLOPS_ARTIFACT_URI") or default_artifact_uri()


def _s3_store(uri: str) -> ArtifactStore:
    # boto3 is imported only when a store is on S3: it adds ~0.3 s to every command that reads a local file
    from services.storage.s3 import S3ArtifactStore

    return S3ArtifactStore(uri)


def open_store(uri: str | None = None) -> ArtifactStore:
    """The store at `uri` (default: `MLOPS_ARTIFACT_URI`, else `default_artifact_uri()`). Raises InvalidInput."""
    uri = uri or _configured_uri()
    if scheme(uri) == "s3":
        return _s3_store(uri)
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
    if scheme(object_uri) == "s3":
        bucket, path = parse_s3_uri(object_uri)
        if not path:
            raise InvalidInput(f"S3 URI {object_uri!r} names a bucket, not an object")
        if scheme(configured) == "s3":
            root_bucket, root_prefix = parse_s3_uri(configured)
            if bucket == root_bucket and (not root_prefix or path.startswith(root_prefix + "/")):
                return _s3_store(configured), path[len(root_prefix) + 1 if root_prefix else 0 :]
        return _s3_store(f"s3://{bucket}"), path
    path = _local_path(object_uri)
    if scheme(configured) != "s3":
        root = _local_path(configured)
        if path.is_relative_to(root) and path != root:
            return LocalArtifactStore(root), validate_key(path.relative_to(root).as_posix())
    if path.parent == path:
        raise InvalidInput(f"artifact URI {object_uri!r} names the filesystem root, not an object")
    return LocalArtifactStore(path.parent), validate_key(path.name)
