"""Run `enforce-retention` for organization alpha and SIGKILL this process at one stage (for the crash tests).

Usage: python -m tests.flows.retention_crash_child STAGE AS_OF_ISO
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(stage: str, as_of: str) -> None:
    from db.queries import retention as q
    from flows.retention import enforce_retention
    from services.storage import LocalArtifactStore, S3ArtifactStore
    from tasks.retention import archives as retention_audit

    if stage == "mid_archive":  # while rows stream from the database into the Parquet file
        real_typed_batch = retention_audit.typed_batch

        def typed_batch(batch):
            result = real_typed_batch(batch)
            die()
            return result

        retention_audit.typed_batch = typed_batch
    elif stage == "after_archive":  # the Parquet object is in the store, nothing else happened
        for cls in (LocalArtifactStore, S3ArtifactStore):
            real_put = cls.put

            def put(self, key, data, *, content_type=None, _real=real_put):
                info = _real(self, key, data, content_type=content_type)
                if key.endswith(".parquet"):
                    die()
                return info

            cls.put = put
    elif stage == "before_manifest":  # archive verified, manifest not written
        retention_audit._put_manifest = lambda store, key, manifest: die()
    elif stage == "before_delete":  # manifest written and read back, ledger not yet updated
        q.record_archive = lambda **kwargs: die()
    elif stage == "mid_delete":  # the first delete batch committed, the second one in flight
        real_delete = q.delete_audit_ids
        calls = []

        def delete_audit_ids(**kwargs):
            calls.append(1)
            deleted = real_delete(**kwargs)
            if len(calls) == 2:
                die()
            return deleted

        q.delete_audit_ids = delete_audit_ids
    else:
        raise SystemExit(f"unknown stage {stage}")
    enforce_retention.fn(organization="alpha", batch_size=5, as_of=datetime.fromisoformat(as_of))
    raise SystemExit("the run finished without reaching its kill point")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
