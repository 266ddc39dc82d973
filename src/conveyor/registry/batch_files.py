"""Batch prediction's files: the input read in chunks, the outputs written chunk by chunk.

The input is a CSV file, a Parquet file or a directory of Parquet files, and only one chunk of
it is in memory at a time. An output (the predictions, the quarantine file) is written under a
temporary name in its directory and appears under its final name only when the job commits it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from conveyor.checks.datasets import CSV_SUFFIXES, PARQUET_SUFFIXES
from conveyor.errors import UsageError
from conveyor.store.blobs import tree_digest

FORMATS_HINT = "use a .csv, .parquet or .pq file"


class InputFile:
    """A CSV file, a Parquet file or a directory of Parquet files, read in chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory", hint="check the input path")
        self.csv = path.is_file() and path.suffix.lower() in CSV_SUFFIXES
        if not self.csv and path.is_file() and path.suffix.lower() not in PARQUET_SUFFIXES:
            raise UsageError(
                f"{path}: unknown input format '{path.suffix}'",
                hint=FORMATS_HINT + ", or a directory of Parquet files",
            )
        self.columns = self._header()

    def _header(self) -> list[str]:
        try:
            if self.csv:
                return [str(c) for c in pd.read_csv(self.path, nrows=0).columns]
            schema = self.dataset().schema
            # A DataFrame's index saved by pandas is a column in the file but not in the frame.
            index = (schema.pandas_metadata or {}).get("index_columns", [])
            return [n for n in schema.names if n not in index]
        except pd.errors.EmptyDataError:
            raise UsageError(f"{self.path}: the CSV file is empty (no header row)") from None
        except (pd.errors.ParserError, UnicodeDecodeError, pa.ArrowException) as exc:
            kind = "CSV" if self.csv else "Parquet"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UsageError(f"{self.path}: cannot read as {kind}: {first}") from None

    def dataset(self) -> pads.Dataset:
        hive = "hive" if self.path.is_dir() else None
        return pads.dataset(str(self.path), format="parquet", partitioning=hive)

    def digest(self) -> tuple[str, int | None]:
        """The input's sha256 (a directory: its tree digest), and how many rows it holds."""
        if self.path.is_dir():
            return tree_digest(self.path), self.dataset().count_rows()
        h, lines, last = hashlib.sha256(), 0, b"\n"
        with open(self.path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                lines += block.count(b"\n") if self.csv else 0
                last = block[-1:]
        if not self.csv:
            return h.hexdigest(), pq.ParquetFile(self.path).metadata.num_rows
        return h.hexdigest(), max(0, lines - (last == b"\n"))  # quoted newlines: an estimate

    def chunks(self, rows: int, text: Sequence[str]) -> Iterator[pd.DataFrame]:
        """Frames of at most ``rows`` rows; CSV columns in ``text`` are read as text."""
        if self.csv:
            dtypes: Any = dict.fromkeys(text, str)
            with pd.read_csv(self.path, chunksize=rows, dtype=dtypes) as reader:
                for frame in reader:
                    yield frame.reset_index(drop=True)
            return
        # By default Arrow buffers a whole file ahead (pre_buffer) and decodes ahead on every
        # core; either makes memory grow with the file (measured), so neither is used.
        scan = pads.ParquetFragmentScanOptions(pre_buffer=False)
        for batch in self.dataset().to_batches(
            batch_size=rows,
            batch_readahead=1,
            fragment_readahead=1,
            fragment_scan_options=scan,
            use_threads=False,
        ):
            if batch.num_rows:
                yield batch.to_pandas().reset_index(drop=True)


class Sink:
    """A CSV or Parquet file written chunk by chunk under a temporary name in its directory,
    renamed to its final name by :meth:`commit`; :meth:`discard` leaves nothing behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = path.suffix.lower() in PARQUET_SUFFIXES
        self.tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty and self.tmp.exists():
            return
        if not self.parquet:
            frame.to_csv(self.tmp, mode="a", header=not self.tmp.exists(), index=False)
        else:
            schema = self.writer.schema if self.writer else None
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, table.schema)
            self.writer.write_table(table)
        self.rows += len(frame)

    def commit(self, empty: pd.DataFrame) -> None:
        if not self.tmp.exists():
            self.write(empty)  # no row: a file with the columns only
        if self.writer is not None:
            self.writer.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError, pa.ArrowException):
                self.writer.close()
        self.tmp.unlink(missing_ok=True)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Bad rows as they were read, every column as text (nulls stay null)."""
    return pd.DataFrame({c: frame[c].astype("string") for c in frame.columns})


def output_file(path: Path | str, what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        shown = f"'{path.suffix}'" if path.suffix else "(no suffix)"
        raise UsageError(f"{what} {path}: unknown file format {shown}", hint=FORMATS_HINT)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory", hint="give a file name")
    return path
