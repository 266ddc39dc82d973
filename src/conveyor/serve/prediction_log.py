"""The prediction log: every prediction, written in batches to Parquet off the request path.

A request only appends a reference to its (already typed) input columns and outputs to an
in-memory queue. A background task writes the queue every ``flush_interval_s`` seconds, or as
soon as ``flush_rows`` rows wait, in a worker thread, to::

    <artifacts>/predictions/env=<environment>/hour=<YYYY-MM-DDTHH>/part-<uuid>.parquet

one row per predicted row: ``request_id``, ``row`` (its position in the request),
``timestamp`` (UTC, when the request arrived), ``model``, ``model_version``, ``protocol``,
``latency_ms``, ``inputs`` (a struct with one field per signature column) and ``outputs``.
A file is written under a temporary name and renamed (or PUT whole on an object store), so a
reader never sees a partial file. If the store refuses a write, the rows are retried at the
next flush while the queue has room; past ``max_pending_rows`` new rows are dropped and
counted, so a slow store never slows or fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from conveyor.errors import UsageError
from conveyor.serve.signature import Array, Signature, join_columns

log = logging.getLogger("conveyor.serve")

ENV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
PREFIX = "predictions"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    """Where and how often predictions are written. ``url`` is the artifact store's root (a
    directory or an fsspec URL such as ``s3://bucket/prefix``)."""

    url: str
    environment: str
    flush_interval_s: float = 10.0
    flush_rows: int = 10_000
    max_pending_rows: int = 1_000_000

    def __post_init__(self) -> None:
        if not ENV_RE.fullmatch(self.environment):
            raise UsageError(
                f"invalid environment name '{self.environment}'",
                hint="use letters, digits, '.', '_' and '-' (at most 100 characters)",
            )
        if self.flush_interval_s <= 0 or self.flush_rows < 1 or self.max_pending_rows < 1:
            raise UsageError("the prediction log needs a positive interval and row counts")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True, kw_only=True)
class Entry:
    """One answered request: what the model saw and said."""

    request_id: str
    protocol: str
    received: float  # seconds since the epoch
    latency_s: float
    columns: Sequence[Array]
    outputs: Array
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = len(self.outputs)


Counter = Callable[[str, int], None]


class PredictionLog:
    """The queue and its writer. ``count(outcome, rows)`` receives written/dropped/failed."""

    def __init__(
        self,
        settings: LogSettings,
        *,
        model: str,
        version: str,
        signature: Signature,
        count: Counter | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.version = version
        self.signature = signature
        self._count = count or (lambda outcome, rows: None)
        self._pending: list[Entry] = []
        self._pending_rows = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fs: Any = None
        self._root = ""

    def record(self, entry: Entry) -> None:
        """Queue an answered request (on the event loop; no I/O)."""
        if self._pending_rows + entry.rows > self.settings.max_pending_rows:
            self._count("dropped", entry.rows)
            return
        self._pending.append(entry)
        self._pending_rows += entry.rows
        if self._pending_rows >= self.settings.flush_rows:
            self._wake.set()

    def start(self) -> None:
        import fsspec

        self._fs, self._root = fsspec.core.url_to_fs(self.settings.url)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="conveyor-log")

    async def close(self) -> None:
        """Stop the writer and write what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._pending or self._fs is None:
            return
        entries, self._pending, self._pending_rows = self._pending, [], 0
        rows = sum(e.rows for e in entries)
        try:
            await asyncio.to_thread(self.write, entries)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("could not write %d prediction log rows: %s", rows, exc)
            self._count("failed", rows)
            if self._pending_rows + rows <= self.settings.max_pending_rows:
                self._pending[:0] = entries
                self._pending_rows += rows
            else:
                self._count("dropped", rows)
            return
        self._count("written", rows)

    # -- writing (in a worker thread) -------------------------------------------------------

    def write(self, entries: Sequence[Entry]) -> list[str]:
        """Write ``entries``, one file per hour they fall in; return the files' paths."""
        by_hour: dict[int, list[Entry]] = {}
        for e in entries:
            by_hour.setdefault(int(e.received // 3600), []).append(e)
        return [
            self._write_file(
                datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H"), group
            )
            for hour, group in sorted(by_hour.items())
        ]

    def partition(self, hour: str) -> str:
        env = self.settings.environment
        return f"{self._root.rstrip('/')}/{PREFIX}/env={env}/hour={hour}"

    def _write_file(self, hour: str, entries: Sequence[Entry]) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = self.table(entries)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, use_dictionary=self._dictionary_columns(table))
        data = sink.getvalue().to_pybytes()
        directory = self.partition(hour)
        final = f"{directory}/part-{uuid.uuid4().hex}.parquet"
        if "file" in _protocols(self._fs):
            os.makedirs(directory, exist_ok=True)
            tmp = f"{directory}/.part-{uuid.uuid4().hex}.parquet.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, final)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        else:
            self._fs.pipe_file(final, data)  # one PUT: the object appears whole or not at all
        return final

    def _dictionary_columns(self, table: Any) -> list[str]:
        """The columns worth a dictionary: those of few distinct strings. By default Parquet
        tries one for every column and gives up on each column of measurements, which made
        the write of a log of numbers five times slower (and its file larger)."""
        import pyarrow as pa

        columns = ["model", "model_version", "protocol"]
        columns += [f"inputs.{c.name}" for c in self.signature.columns if c.type == "string"]
        if pa.types.is_string(table.schema.field("outputs").type):
            columns.append("outputs")  # class labels
        return columns

    def table(self, entries: Sequence[Entry]) -> Any:
        import pyarrow as pa

        counts = np.fromiter((e.rows for e in entries), dtype=np.int64, count=len(entries))
        ids = np.repeat(np.array([e.request_id for e in entries], dtype=object), counts)
        stamps = np.repeat(
            np.array([int(e.received * 1e6) for e in entries], dtype=np.int64), counts
        )
        latency = np.repeat(np.array([e.latency_s * 1000 for e in entries]), counts)
        protocol = np.repeat(np.array([e.protocol for e in entries], dtype=object), counts)
        total = int(counts.sum())
        starts = np.repeat(np.cumsum(counts) - counts, counts)  # each row's request's first
        columns = join_columns([e.columns for e in entries])
        inputs = pa.StructArray.from_arrays(
            [pa.array(c) for c in columns], names=self.signature.names
        )
        return pa.table(
            {
                "request_id": pa.array(ids, type=pa.string()),
                "row": pa.array(np.arange(total) - starts),
                "timestamp": pa.array(stamps, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "model": pa.array([self.model] * total, type=pa.string()),
                "model_version": pa.array([self.version] * total, type=pa.string()),
                "protocol": pa.array(protocol, type=pa.string()),
                "latency_ms": pa.array(latency, type=pa.float64()),
                "inputs": inputs,
                "outputs": _outputs(np.concatenate([e.outputs for e in entries])),
            }
        )


def _outputs(values: Array) -> Any:
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values if values.dtype.kind != "O" else values.tolist())
    width = int(np.prod(values.shape[1:]))
    flat = pa.array(values.reshape(len(values) * width) if width else values.reshape(0))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def now() -> float:
    return time.time()
