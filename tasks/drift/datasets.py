"""Datasets in the artifact store: reference files and the serving layer's logged inputs, read as typed columns.

Logged inputs live under a prefix, partitioned by UTC date, one or more Parquet or CSV files per day:

    <inputs_uri>/date=2026-11-24/part-0000.parquet
    <inputs_uri>/date=2026-11-24/part-0001.csv.gz

Every file has a timestamp column (default `timestamp`; ISO 8601 or native timestamps, naive ones taken as
UTC). A window [start, end) reads only the partitions of the dates it covers, only the columns it needs,
file by file (CSV in chunks), so memory stays bounded by the window's rows, not the history's.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq

from core.errors import InvalidInput, NotFound
from services.storage import ArtifactStore, resolve

FORMATS = (".parquet", ".pq", ".csv", ".csv.gz")
CSV_CHUNK_ROWS = 200_000


def partition_dates(start: datetime, end: datetime) -> list[date]:
    """UTC dates a window [start, end) touches."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def partition_prefix(prefix: str, day: date) -> str:
    return f"{prefix.rstrip('/')}/date={day.isoformat()}/"


def data_format(key: str) -> str:
    """`parquet` or `csv` by the file's extension; InvalidInput for anything else."""
    lowered = key.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    raise InvalidInput(f"unsupported dataset file '{key}': expected {', '.join(FORMATS)}")


def read_frame(store: ArtifactStore, key: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One Parquet or CSV object as a DataFrame of those `columns` it has (all when None).

    Absent columns are left out, not an error: drift reports them per column. Unreadable files raise
    InvalidInput naming the object.
    """
    kind = data_format(key)
    with store.open(key) as stream:
        try:
            if kind == "parquet":
                data = io.BytesIO(stream.read())
                available = pq.ParquetFile(data).schema_arrow.names
                wanted = None if columns is None else [c for c in columns if c in available]
                return pq.read_table(data, columns=wanted).to_pandas()
            usecols = None if columns is None else (lambda name: name in columns)
            compression = "gzip" if key.lower().endswith(".gz") else None
            chunks = pd.read_csv(stream, usecols=usecols, chunksize=CSV_CHUNK_ROWS, compression=compression)
            return pd.concat(list(chunks), ignore_index=True)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise InvalidInput(f"unreadable dataset {store.uri_for(key)}: {type(exc).__name__}: {exc}") from None


def read_uri(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A dataset by artifact-store URI (or local path)."""
    store, key = resolve(uri)
    if not store.exists(key):
        raise NotFound(f"dataset {uri} does not exist")
    return read_frame(store, key, columns)


def read_window(
    inputs_uri: str, start: datetime, end: datetime, *, timestamp_column: str, columns: list[str] | None
) -> pd.DataFrame:
    """Logged inputs with `start <= timestamp < end`, from the date partitions under `inputs_uri`."""
    store, prefix = resolve(inputs_uri.rstrip("/") + "/")
    wanted = None if columns is None else list(dict.fromkeys([timestamp_column, *columns]))
    frames = []
    for key in _window_files(store, prefix, start, end):
        frame = read_frame(store, key, wanted)
        if timestamp_column not in frame.columns:
            raise InvalidInput(f"{key}: no timestamp column '{timestamp_column}'")
        stamps = _utc(frame[timestamp_column], key)
        frames.append(frame.loc[(stamps >= start) & (stamps < end)].drop(columns=[timestamp_column]))
    if not frames:
        return pd.DataFrame(columns=[c for c in (columns or []) if c != timestamp_column])
    return pd.concat(frames, ignore_index=True)


def _window_files(store: ArtifactStore, prefix: str, start: datetime, end: datetime) -> Iterator[str]:
    for day in partition_dates(start, end):
        for info in store.list(partition_prefix(prefix, day)):
            if info.key.lower().endswith(FORMATS):
                yield info.key


def _utc(values: pd.Series, key: str) -> pd.Series:
    try:
        stamps = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{key}: unreadable timestamps ({exc})") from None
    return stamps
