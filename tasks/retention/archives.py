"""Audit-log archives: one Parquet object and manifest per organization and month; verify, then delete; restore.

The order that makes a crash at any point lose and duplicate nothing:

1. stream the month's expired rows from `COPY ... TO STDOUT` (bounded CSV blocks, parsed by Arrow) into a local
   Parquet file, after the rows of the month's existing archive, if any (so a month that gains expired rows is
   rewritten with all its rows; ids already archived are skipped, so restored rows are never archived twice);
2. put the file at its deterministic key (all or nothing: the previous object stays until the new one is whole);
3. read it back from the store and check the row count and the checksum over the ids;
4. put the manifest, read it back; record the archive in `retention_archives`;
5. delete exactly the archived ids still in the database, in bounded batches, one short transaction each.

Nothing is deleted before step 5, and step 1 of the next run always starts from what the store holds, so a
run killed anywhere is finished by the next one.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.errors import MlopsError, NotFound
from db.queries import retention as q
from tasks.retention.maintenance import retention_owner_session
from tasks.retention.rules import archive_key, manifest_key, parse_month

CATEGORY = "audit_logs"
MANIFEST_FORMAT = "mlops-retention-archive/1"
CHECKSUM_ALGORITHM = "sha256 of the ids as 16-byte big-endian UUIDs, sorted ascending, concatenated"
CSV_BLOCK_BYTES = 4 << 20  # rows parsed per Arrow block: bounded memory whatever the month's size

UUID_COLUMNS = ("id", "organization_id", "user_id", "api_key_id", "resource_id")
ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.uuid(), nullable=False),
        pa.field("organization_id", pa.uuid(), nullable=False),
        pa.field("user_id", pa.uuid()),
        pa.field("api_key_id", pa.uuid()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("resource_id", pa.uuid()),
        pa.field("details", pa.string()),  # the jsonb value as JSON text
        pa.field("ip_address", pa.string()),  # PostgreSQL's inet text form
        pa.field("user_agent", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
_CSV_TYPES = {name: (pa.int64() if name == "created_us" else pa.string()) for name in q.AUDIT_COPY_COLUMNS}
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UNHEX = np.full(256, 255, dtype=np.uint8)
_UNHEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_UNHEX[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_DASHES = (8, 13, 18, 23)
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


# --- pure: UUIDs as bytes, checksums --------------------------------------------------------------------------


def uuid_text_to_arrow(strings: pa.Array) -> pa.Array:
    """Canonical UUID strings (nulls allowed) -> an Arrow `uuid` array, vectorised (no per-row Python)."""
    strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    if strings.type != pa.string():
        strings = strings.cast(pa.string())
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + n + 1]
    lengths = np.diff(offsets)
    valid = np.ones(n, dtype=bool)
    if strings.null_count:  # the validity bitmap, unpacked (Arrow's boolean to_numpy would import pandas)
        bits = np.unpackbits(np.frombuffer(strings.buffers()[0], dtype=np.uint8), bitorder="little")
        valid = bits[strings.offset : strings.offset + n].astype(bool)
    if n and not (np.all(lengths[valid] == 36) and np.all(lengths[~valid] == 0)):
        raise MlopsError("archive: a UUID column holds a value that is not a canonical UUID")
    chars = np.full((n, 36), ord("0"), dtype=np.uint8)
    if n:
        data = np.frombuffer(strings.buffers()[2], dtype=np.uint8) if strings.buffers()[2] else np.empty(0, np.uint8)
        chars[valid] = data[offsets[0] : offsets[-1]].reshape(-1, 36)
    nibbles = _UNHEX[np.delete(chars, _DASHES, axis=1)]
    if (nibbles == 255).any():
        raise MlopsError("archive: a UUID column holds a value that is not a canonical UUID")
    raw = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).astype(np.uint8)
    validity = None if not strings.null_count else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    storage = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [validity, pa.py_buffer(np.ascontiguousarray(raw).tobytes())], null_count=n - int(valid.sum())
    )
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def binary16(ids: np.ndarray) -> pa.FixedSizeBinaryArray:
    """(n, 16) uint8 -> an Arrow binary(16) array sharing the bytes."""
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), ids.shape[0], [None, pa.py_buffer(ids.tobytes())])


def uuid_bytes(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The (n, 16) uint8 matrix of a non-null `uuid` (or binary(16)) column."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    if storage.null_count:
        raise MlopsError("archive: the id column holds nulls")
    buffer = np.frombuffer(storage.buffers()[1], dtype=np.uint8)
    return buffer[storage.offset * 16 : (storage.offset + len(storage)) * 16].reshape(-1, 16)


def uuid_hex(ids: np.ndarray) -> np.ndarray:
    """(n, 16) bytes -> (n, 32) lowercase hex digits (uint8 ASCII), which PostgreSQL reads as UUIDs."""
    out = np.empty((ids.shape[0], 32), dtype=np.uint8)
    out[:, 0::2] = _HEX[ids >> 4]
    out[:, 1::2] = _HEX[ids & 0x0F]
    return out


def uuid_arrow_to_text(array: pa.Array) -> pa.Array:
    """An Arrow `uuid` column -> canonical strings with dashes (nulls kept), vectorised."""
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    filled = pc.fill_null(storage, pa.scalar(b"\0" * 16, pa.binary(16)))
    digits = uuid_hex(uuid_bytes(filled))
    chars = np.insert(digits, [8, 12, 16, 20], ord("-"), axis=1)
    texts = pa.array(chars.view("S36").ravel(), pa.binary(36)).cast(pa.string())
    return pc.if_else(storage.is_null(), pa.scalar(None, pa.string()), texts)


def ids_checksum(ids: np.ndarray) -> str:
    """sha256 over the ids sorted as 16-byte big-endian numbers: independent of row order."""
    if ids.shape[0] == 0:
        return hashlib.sha256(b"").hexdigest()
    words = np.ascontiguousarray(ids).view(">u8").reshape(-1, 2)
    order = np.lexsort((words[:, 1], words[:, 0]))
    return hashlib.sha256(np.ascontiguousarray(ids[order]).tobytes()).hexdigest()


def ids_literal(ids: np.ndarray) -> str:
    """A PostgreSQL `uuid[]` literal `{hex,hex,...}` of (n, 16) ids, built without per-row Python."""
    if ids.shape[0] == 0:
        return "{}"
    rows = np.empty((ids.shape[0], 33), dtype=np.uint8)
    rows[:, :32] = uuid_hex(ids)
    rows[:, 32] = ord(",")
    return "{" + rows.tobytes()[:-1].decode("ascii") + "}"


def typed_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch parsed from the `COPY` CSV -> the archive's typed schema."""
    columns = []
    for f in ARCHIVE_SCHEMA:
        if f.name == "created_at":
            columns.append(batch.column("created_us").cast(pa.timestamp("us", tz="UTC")))
        elif f.name in UUID_COLUMNS:
            columns.append(uuid_text_to_arrow(batch.column(f.name)))
        else:
            columns.append(batch.column(f.name))
    return pa.RecordBatch.from_arrays(columns, schema=ARCHIVE_SCHEMA)


def csv_batch(batch: pa.RecordBatch) -> bytes:
    """An archive batch -> CSV in `AUDIT_COPY_COLUMNS` order for `COPY ... FROM STDIN` (null: empty unquoted)."""
    columns = {}
    for f in ARCHIVE_SCHEMA:
        column = batch.column(f.name)
        if f.name == "created_at":
            columns["created_us"] = column.cast(pa.int64())
        elif f.name in UUID_COLUMNS:
            columns[f.name] = uuid_arrow_to_text(column)
        else:
            columns[f.name] = column
    table = pa.table({name: columns[name] for name in q.AUDIT_COPY_COLUMNS})
    out = io.BytesIO()
    pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return out.getvalue()


# --- the store side -------------------------------------------------------------------------------------------


class _BlockReader(io.RawIOBase):
    """A read-only file over an iterator of byte blocks (the `COPY` stream), for Arrow's streaming CSV reader."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._blocks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


@dataclass
class ArchiveSummary:
    """What one file holds."""

    row_count: int = 0
    checksum: str = ""
    min_time: datetime | None = None
    max_time: datetime | None = None
    ids: np.ndarray = field(default_factory=lambda: np.empty((0, 16), np.uint8))


def summarize(path: Path) -> ArchiveSummary:
    """Read a Parquet archive's ids and times back in batches: count, id checksum, time range."""
    parquet = pq.ParquetFile(path)
    if not parquet.schema_arrow.equals(ARCHIVE_SCHEMA):
        raise MlopsError(f"archive {path.name}: unexpected schema {parquet.schema_arrow}")
    ids, lows, highs = [], [], []
    for batch in parquet.iter_batches(columns=["id", "created_at"], batch_size=65_536):
        ids.append(uuid_bytes(batch.column("id")).copy())
        if batch.num_rows:
            lows.append(pc.min(batch.column("created_at")).as_py())
            highs.append(pc.max(batch.column("created_at")).as_py())
    all_ids = np.concatenate(ids) if ids else np.empty((0, 16), np.uint8)
    return ArchiveSummary(
        len(all_ids), ids_checksum(all_ids), min(lows, default=None), max(highs, default=None), all_ids
    )


def _download(store: Any, key: str, path: Path) -> None:
    with store.open(key) as source, path.open("wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)


def _manifest(org_id: uuid.UUID, slug: str, period: str, key: str, summary: ArchiveSummary, path: Path) -> dict:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {
        "format": MANIFEST_FORMAT,
        "category": CATEGORY,
        "organization": slug,
        "organization_id": str(org_id),
        "period": period,
        "object_key": key,
        "row_count": summary.row_count,
        "min_time": summary.min_time.isoformat() if summary.min_time else None,
        "max_time": summary.max_time.isoformat() if summary.max_time else None,
        "ids_checksum": {"algorithm": CHECKSUM_ALGORITHM, "sha256": summary.checksum},
        "parquet_sha256": digest.hexdigest(),
        "size_bytes": path.stat().st_size,
        "compression": "zstd",
        "columns": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in ARCHIVE_SCHEMA],
    }


@dataclass
class MonthOutcome:
    period: str
    key: str
    archived_rows: int  # rows in the archive after this run
    new_rows: int  # rows added to the archive by this run
    deleted: int
    rewritten: bool


def archive_month(
    store: Any, *, organization_id: uuid.UUID, slug: str, period: str, cutoff: datetime, batch_size: int
) -> MonthOutcome:
    """Archive, verify and delete one month's expired audit rows (see the module docstring for the order)."""
    start, end = parse_month(period)
    end = min(end, cutoff)
    key = archive_key(CATEGORY, slug, period)
    with tempfile.TemporaryDirectory(prefix="mlops-retention-") as tmp:
        work = Path(tmp)
        previous, previous_ids = None, np.empty((0, 16), np.uint8)
        if store.exists(key):
            _download(store, key, work / "previous.parquet")
            previous = pq.ParquetFile(work / "previous.parquet")
            if not previous.schema_arrow.equals(ARCHIVE_SCHEMA):
                raise MlopsError(f"{key} in the store has an unexpected schema; it was left untouched")
            previous_ids = summarize(work / "previous.parquet").ids
        db_ids, new_rows = _write_month(work / "month.parquet", previous, previous_ids, organization_id, start, end)
        rewrite = new_rows > 0 or previous is None
        if rewrite:
            store.put(key, work / "month.parquet", content_type="application/vnd.apache.parquet")
        expected = summarize(work / "month.parquet" if rewrite else work / "previous.parquet")
        # read back what the store now holds: the only copy once the rows are deleted
        _download(store, key, work / "readback.parquet")
        stored = summarize(work / "readback.parquet")
        if (stored.row_count, stored.checksum) != (expected.row_count, expected.checksum):
            raise MlopsError(
                f"{key}: read back {stored.row_count} rows (checksum {stored.checksum[:12]}), expected "
                f"{expected.row_count} ({expected.checksum[:12]}); nothing deleted"
            )
        manifest = _manifest(organization_id, slug, period, key, stored, work / "readback.parquet")
        _put_manifest(store, manifest_key(key), manifest)
        with retention_owner_session() as session:
            q.record_archive(
                session=session,
                organization_id=organization_id,
                category=CATEGORY,
                period=period,
                object_key=key,
                row_count=stored.row_count,
                min_time=stored.min_time,
                max_time=stored.max_time,
                checksum=stored.checksum,
                size_bytes=manifest["size_bytes"],
            )
        deletable = _archived(db_ids, stored.ids)
        deleted = delete_ids(organization_id, deletable, cutoff=cutoff, batch_size=batch_size)
    return MonthOutcome(period, key, stored.row_count, new_rows, deleted, rewrite)


def _write_month(
    path: Path,
    previous: pq.ParquetFile | None,
    previous_ids: np.ndarray,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
) -> tuple[np.ndarray, int]:
    """Write the previous archive's rows, then the database's rows not in it; (ids seen in the database, new)."""
    previous_set = binary16(previous_ids) if len(previous_ids) else None
    seen, new_rows = [], 0
    with pq.ParquetWriter(path, ARCHIVE_SCHEMA, compression="zstd") as writer:
        if previous is not None:
            for batch in previous.iter_batches(batch_size=65_536):
                writer.write_batch(batch)
        with retention_owner_session() as session:
            blocks = q.stream_expired_audit_csv(session=session, organization_id=org_id, start=start, end=end)
            reader = pacsv.open_csv(
                io.BufferedReader(_BlockReader(blocks), 1 << 20),
                read_options=pacsv.ReadOptions(column_names=list(q.AUDIT_COPY_COLUMNS), block_size=CSV_BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(
                    column_types=_CSV_TYPES,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            for raw in reader:
                batch = typed_batch(raw)
                seen.append(uuid_bytes(batch.column("id")).copy())
                if previous_set is not None:
                    batch = batch.filter(pc.invert(pc.is_in(batch.column("id").storage, value_set=previous_set)))
                if batch.num_rows:
                    writer.write_batch(batch)
                    new_rows += batch.num_rows
    return (np.concatenate(seen) if seen else np.empty((0, 16), np.uint8)), new_rows


def _archived(db_ids: np.ndarray, archived: np.ndarray) -> np.ndarray:
    """The database ids that the verified archive holds (all of them, unless rows arrived meanwhile)."""
    if not len(db_ids):
        return db_ids
    keep = pc.is_in(binary16(db_ids), value_set=binary16(archived))
    return db_ids[np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)]


def _put_manifest(store: Any, key: str, manifest: dict) -> None:
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    store.put(key, body, content_type="application/json")
    if json.loads(store.get(key)) != manifest:
        raise MlopsError(f"{key}: the manifest read back differs from the one written; nothing deleted")


def delete_ids(organization_id: uuid.UUID, ids: np.ndarray, *, cutoff: datetime, batch_size: int) -> int:
    """Delete archived ids in batches of `batch_size`, each its own short transaction; returns how many went."""
    deleted = 0
    for offset in range(0, len(ids), batch_size):
        literal = ids_literal(ids[offset : offset + batch_size])
        with retention_owner_session() as session:
            deleted += q.delete_audit_ids(
                session=session, organization_id=organization_id, ids_literal=literal, cutoff=cutoff
            )
    return deleted


# --- restore --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreOutcome:
    organization: str
    period: str
    key: str
    archived_rows: int
    inserted: int
    already_present: int
    references_gone: int
    held_until: datetime


def restore_month(
    store: Any, *, organization_id: uuid.UUID, slug: str, period: str, hold_until: datetime, batch_rows: int = 50_000
) -> RestoreOutcome:
    """Load an archived month back into `audit_logs` (rows already there are skipped), after checking the
    archive against its manifest; the month is held (not deleted again) until `hold_until`."""
    parse_month(period)
    key = archive_key(CATEGORY, slug, period)
    if not store.exists(key):
        raise NotFound(f"no audit log archive for {slug} {period} ({store.uri_for(key)})")
    with tempfile.TemporaryDirectory(prefix="mlops-restore-") as tmp:
        path = Path(tmp) / "month.parquet"
        _download(store, key, path)
        summary = summarize(path)
        manifest = json.loads(store.get(manifest_key(key))) if store.exists(manifest_key(key)) else None
        if manifest and (manifest["row_count"], manifest["ids_checksum"]["sha256"]) != (
            summary.row_count,
            summary.checksum,
        ):
            raise MlopsError(
                f"{key} does not match its manifest (an archive run was interrupted): run `mlops retention --org "
                f"{slug}` to finish it, then restore; nothing restored"
            )
        with retention_owner_session() as session:
            if not q.hold_archive(
                session=session, organization_id=organization_id, category=CATEGORY, period=period, until=hold_until
            ):  # the ledger lost the month: record it again
                q.record_archive(
                    session=session,
                    organization_id=organization_id,
                    category=CATEGORY,
                    period=period,
                    object_key=key,
                    row_count=summary.row_count,
                    min_time=summary.min_time,
                    max_time=summary.max_time,
                    checksum=summary.checksum,
                    size_bytes=path.stat().st_size,
                )
                q.hold_archive(
                    session=session, organization_id=organization_id, category=CATEGORY, period=period, until=hold_until
                )
        inserted = gone = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            with retention_owner_session() as session:
                added, missing = q.restore_audit_csv(session=session, csv=csv_batch(batch))
            inserted, gone = inserted + added, gone + missing
    return RestoreOutcome(
        slug, period, key, summary.row_count, inserted, summary.row_count - inserted, gone, hold_until.astimezone(UTC)
    )
