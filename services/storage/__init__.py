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

from services.storage.keys import DEFAULT_BUCKET, MAX_KEY_BYTES, Data, ObjectInfo, validate_key
from services.storage.local import LocalArtifactStore
from services.storage.store import ArtifactStore
from services.storage.uri import (
    TENANT_AREAS,
    allowed_uris,
    default_artifact_uri,
    open_store,
    resolve,
    resolve_for_organization,
)

__all__ = [
    "DEFAULT_BUCKET",
    "MAX_KEY_BYTES",
    "TENANT_AREAS",
    "ArtifactStore",
    "Data",
    "LocalArtifactStore",
    "ObjectInfo",
    "S3ArtifactStore",
    "allowed_uris",
    "default_artifact_uri",
    "open_store",
    "resolve",
    "resolve_for_organization",
    "validate_key",
]


def __getattr__(name: str):
    # S3ArtifactStore on first use only: importing boto3 costs ~0.3 s, and most commands never touch S3
    if name == "S3ArtifactStore":
        from services.storage.s3 import S3ArtifactStore

        return S3ArtifactStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
