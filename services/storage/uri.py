"""Artifact URIs: which store and key a URI names, and the configured store."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from core.errors import InvalidInput, PermissionDenied
from core.settings import mlops_home
from services.storage.keys import DEFAULT_BUCKET, parse_s3_uri, scheme, validate_key
from services.storage.local import LocalArtifactStore
from services.storage.store import ArtifactStore

# Areas of the configured store where an organization's own objects live, each as `<area>/<org-slug>/...`
# (models/acme/..., datasets/acme/..., inference-logs/acme/..., uploads/acme/...). A tenant-supplied URI may
# name only these; retention archives and other platform areas are never readable through tenant settings.
TENANT_AREAS = ("datasets", "inference-logs", "models", "uploads")

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

    Trusted callers only (the CLI on its user's machine, the platform's own keys): URIs that come from a flow
    parameter or a tenant's settings go through `resolve_for_organization`.
    """
    inside = _configured_key(object_uri)
    if inside is not None:
        return inside
    if scheme(object_uri) == "s3":
        bucket, path = parse_s3_uri(object_uri)
        return _s3_store(f"s3://{bucket}"), path
    path = _local_path(object_uri)
    if path.parent == path:
        raise InvalidInput(f"artifact URI {object_uri!r} names the filesystem root, not an object")
    return LocalArtifactStore(path.parent), validate_key(path.name)


def resolve_for_organization(
    object_uri: str, organization: str, *, areas: Iterable[str] = TENANT_AREAS, allowed: Iterable[str] = ()
) -> tuple[ArtifactStore, str]:
    """(store, key) of a URI an organization supplied (a flow parameter, a deployment's configuration), only when
    it lies inside that organization's part of the configured store (`<area>/<organization>/...` for the given
    `areas`) or under one of its `allowed` S3 prefixes (`organizations.settings["storage"]["allowed_uris"]`).

    Never a local path outside the store (the worker's disk) and never another organization's objects: an
    allowed prefix inside the configured store but outside the organization's part is ignored. Raises
    InvalidInput for a malformed URI, PermissionDenied (one line) for anything else.
    """
    if not isinstance(object_uri, str) or not object_uri.strip():
        raise InvalidInput("an artifact URI must be a non-empty string")
    inside = _configured_key(object_uri)
    if inside is not None:
        store, key = inside
        if _in_organization(key, organization, areas):
            return store, key
    elif scheme(object_uri) == "s3":
        bucket, path = parse_s3_uri(object_uri)
        for entry in allowed:
            if _under_allowed(bucket, path, entry, organization, areas):
                return _s3_store(f"s3://{bucket}"), path
    where = ", ".join(f"{area}/{organization}/" for area in areas)
    raise PermissionDenied(
        f"artifact URI {object_uri!r} is outside organization '{organization}''s part of the artifact store "
        f"({_configured_uri()}: {where}) and its allowed URIs"
    )


def allowed_uris(organization_settings: Mapping[str, Any] | None) -> tuple[str, ...]:
    """An organization's explicit allow-list, `settings["storage"]["allowed_uris"]`: S3 prefixes outside the
    configured store that its tenant-supplied URIs may also name. Entries that are not S3 URIs are dropped (a
    local path would be the worker's disk)."""
    storage = (organization_settings or {}).get("storage") or {}
    entries = storage.get("allowed_uris") if isinstance(storage, Mapping) else None
    if not isinstance(entries, list):
        return ()
    return tuple(e for e in entries if isinstance(e, str) and scheme(e) == "s3")


def _configured_key(object_uri: str) -> tuple[ArtifactStore, str] | None:
    """(configured store, key) when `object_uri` names an object or prefix inside the configured store."""
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
        return None
    path = _local_path(object_uri)
    if scheme(configured) != "s3":
        root = _local_path(configured)
        if path.is_relative_to(root) and path != root:
            return LocalArtifactStore(root), validate_key(path.relative_to(root).as_posix())
    return None


def _in_organization(key: str, organization: str, areas: Iterable[str]) -> bool:
    parts = key.split("/")
    return len(parts) >= 2 and parts[0] in tuple(areas) and parts[1] == organization


def _under_allowed(bucket: str, path: str, entry: str, organization: str, areas: Iterable[str]) -> bool:
    """Whether s3://bucket/path lies under the allowed S3 prefix `entry` (whole segments only). Entries inside
    the configured store count only within the organization's own part, so no allow-list reaches another
    organization's objects there."""
    if not isinstance(entry, str) or scheme(entry) != "s3":
        return False
    try:
        allowed_bucket, allowed_prefix = parse_s3_uri(entry)
    except InvalidInput:
        return False
    within = not allowed_prefix or path == allowed_prefix or path.startswith(allowed_prefix + "/")
    if bucket != allowed_bucket or not within:
        return False
    configured = _configured_uri()
    if scheme(configured) == "s3":
        root_bucket, root_prefix = parse_s3_uri(configured)
        if bucket == root_bucket and (not root_prefix or path.startswith(root_prefix + "/")):
            return False  # inside the configured store: only the organization's own part, checked above
    return True
