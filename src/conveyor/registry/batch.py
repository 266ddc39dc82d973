"""Batch prediction: a model version's package scores a CSV or Parquet file, chunk by chunk.

:func:`predict_batch` checks every chunk row by row against the package's signature (and its
data schema, when the package holds ``schema.yaml``), then either refuses the job at the first
bad chunk or sets the bad rows aside in a quarantine file with the reason, predicts the good
rows and writes them after their input columns. Only one chunk is in memory at a time, so a
file larger than memory works; files appear under their final names only when the job has
succeeded. The job is a run of pipeline ``predict:<model>`` with one step, ``predict``, whose
inputs are the model artifact and the package and whose outputs are the files written, so
``conveyor lineage`` leads from the predictions to the run that trained the model.
See docs/batch-prediction.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from conveyor.checks.datasets import CSV_SUFFIXES, PARQUET_SUFFIXES, utc_naive
from conveyor.checks.model_output import Predict, model_output
from conveyor.checks.schema import AnomalyKind, ColumnSchema, LogicalType, Schema, load_schema
from conveyor.core.checks import CheckResult, Severity
from conveyor.core.records import ArtifactInfo, RunStatus, StepStatus
from conveyor.engine import lease
from conveyor.engine.gitinfo import git_state
from conveyor.engine.project import Project
from conveyor.engine.run import Cancelled, new_run_id
from conveyor.errors import (
    GateFailedError,
    IntegrityError,
    LeaseLostError,
    UsageError,
    did_you_mean,
)
from conveyor.registry.package import Package, open_package, read_package
from conveyor.registry.versions import ModelVersion, resolve_version
from conveyor.store import queries
from conveyor.store.blobs import tree_digest

STEP = "predict"
ROW, REASON = "_row", "_reason"
SCHEMA_FILE = "schema.yaml"
MAX_EXAMPLES = 5
SHOWN_CHARS = 60
FLOATS, INTEGERS = frozenset({"float", "double"}), frozenset({"integer", "long"})
# Column types that hold a missing value (NaN, None, NaT), as the prediction service decides.
HOLDS_MISSING = FLOATS | {"string", "datetime"}
TEXT_TYPES = frozenset({"string", "datetime"})  # read from CSV as text, then parsed
TYPES = FLOATS | INTEGERS | TEXT_TYPES | {"boolean"}
FINAL = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
LIMITS = {"integer": (-(2**31), 2**31 - 1), "float": (-3.4028234e38, 3.4028234e38)}
# A column only the data schema names is type-checked as the nearest signature type.
SCHEMA_TYPES = {
    LogicalType.INTEGER: "long",
    LogicalType.FLOAT: "double",
    LogicalType.BOOLEAN: "boolean",
    LogicalType.DATETIME: "datetime",
}
FORMATS_HINT = "use a .csv, .parquet or .pq file"


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchProgress:
    """Where a job is, reported after each chunk (and once, with no rows, when it starts)."""

    run_id: str
    rows: int  # rows read so far
    total: int | None  # rows in the input: exact for Parquet, estimated from lines for CSV
    chunks: int
    predicted: int
    quarantined: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Rows of one column that failed one check, with a few of their values."""

    column: str
    kind: AnomalyKind
    what: str
    rows: int
    examples: tuple[str, ...] = ()

    def describe(self, column: bool = True) -> str:
        noun = "row" if self.rows == 1 else "rows"
        shown = ", ".join(repr(e) for e in self.examples)
        text = f"{self.rows:,} {noun}: {self.what}" + (f" (e.g. {shown})" if shown else "")
        return f"{self.column}: {text}" if column else text

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": str(self.kind),
            "what": self.what,
            "rows": self.rows,
            "examples": list(self.examples),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """What a batch prediction job did; ``status`` is ``succeeded`` or ``refused``."""

    run_id: str
    status: str
    model: str
    method: str
    model_digest: str
    package_digest: str
    input: str
    input_digest: str
    output: str
    output_digest: str | None
    quarantine: str | None
    quarantine_digest: str | None
    rows: int
    predicted: int
    quarantined: int
    chunks: int
    duration_s: float
    problems: tuple[Problem, ...] = ()
    checks: tuple[CheckResult, ...] = ()

    def summary(self) -> str:
        if self.status == "refused":
            return f"refused: bad rows in {self.input}; nothing was written (run {self.run_id})"
        aside = f"; {self.quarantined:,} set aside in {self.quarantine}" if self.quarantine else ""
        return (
            f"predicted {self.predicted:,} of {self.rows:,} rows with {self.model} "
            f"({self.method}) into {self.output}{aside} (run {self.run_id})"
        )

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["problems"] = [p.to_json() for p in self.problems]
        data["checks"] = [
            {"name": c.name, "passed": c.passed, "severity": str(c.severity), "message": c.message}
            for c in self.checks
        ]
        return data


class BatchRefused(GateFailedError):
    """A chunk held rows the model must not see, and no quarantine file was given."""

    def __init__(self, message: str, *, hint: str, report: BatchReport) -> None:
        super().__init__(message, hint=hint)
        self.report = report


# -- the input's columns and their row-level checks ------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InputColumn:
    """A column checked row by row: a model input (``type`` set) or a data schema column."""

    name: str
    type: str | None  # MLflow type (for a data schema column: the nearest one, or None)
    feature: bool = True  # a model input (in the signature), not only a data schema column
    required: bool = True
    schema: ColumnSchema | None = None

    @property
    def holds_missing(self) -> bool:
        if self.schema is not None and self.schema.max_null_fraction <= 0:
            return False
        if not self.feature:
            return True
        return not self.required and self.type in HOLDS_MISSING


def input_columns(package: Package, schema: Schema | None) -> tuple[InputColumn, ...]:
    """The model's input columns from the package signature, then the data schema's others."""
    raw = (package.mlmodel.get("signature") or {}).get("inputs")
    try:
        specs: list[dict[str, Any]] = json.loads(raw) if isinstance(raw, str) else list(raw or ())
        names = [(str(s["name"]), str(s["type"]), bool(s.get("required", True))) for s in specs]
    except (ValueError, TypeError, KeyError, AttributeError):
        names = []
    if not names:
        raise UsageError(
            f"the package of {package.ref} has no readable input signature",
            hint="package the version again with 'conveyor model package'",
        )
    unknown = [f"{n} ({t})" for n, t, _ in names if t not in TYPES]
    if unknown:
        raise UsageError(
            f"{package.ref}: signature column types {unknown} cannot be read from a file",
            hint=f"batch prediction reads {', '.join(sorted(TYPES))} columns",
        )
    by_name = {c.name: c for c in schema.columns} if schema else {}
    model = [InputColumn(name=n, type=t, required=r, schema=by_name.get(n)) for n, t, r in names]
    taken = {c.name for c in model}
    extra = [
        InputColumn(name=c.name, type=SCHEMA_TYPES.get(c.type), feature=False, schema=c)
        for c in by_name.values()
        if c.name not in taken
    ]
    return (*model, *extra)


def package_schema(package: Package) -> Schema | None:
    """The package's data schema (``schema.yaml``, listed in its manifest), if it has one."""
    rel = package.manifest.get("schema")
    rel = rel if isinstance(rel, str) else SCHEMA_FILE
    if rel not in package.manifest.get("files", {}):
        return None
    return load_schema(package.directory / rel)


Found = tuple[AnomalyKind, np.ndarray[Any, Any], str, bool]  # kind, rows, what, show the value


def _shown(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("null").str.slice(0, SHOWN_CHARS)


def _convert(kind: str | None, s: pd.Series) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    """The column as ``kind`` (NaN / NaT where it is not one), and which values are not."""
    present = s.notna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):  # e.g. Parquet dictionary columns
        s = s.astype(s.dtype.categories.dtype)
    if kind is None or kind == "string":
        if kind is None or isinstance(s.dtype, pd.StringDtype):
            return s, np.zeros(len(s), bool)
        if s.dtype == object:
            text = s.map(lambda v: isinstance(v, str), na_action="ignore")
            return s, present & ~text.fillna(True).to_numpy(dtype=bool)
        return s, present  # numbers, booleans, dates: not text
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s, np.zeros(len(s), bool)
        mapped = s.astype("string").str.lower().map({"true": True, "false": False})
        return mapped, present & mapped.isna().to_numpy()
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            parsed = s
        else:
            parsed = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
        if getattr(parsed.dtype, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed, present & parsed.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        return s, present
    numeric = pd.api.types.is_numeric_dtype(s.dtype)
    numbers = s if numeric else pd.to_numeric(s, errors="coerce")
    wrong = present & numbers.isna().to_numpy()
    if kind in INTEGERS:
        floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            wrong |= present & ~wrong & (~np.isfinite(floats) | (np.floor(floats) != floats))
    return numbers, wrong


def check_column(column: InputColumn, s: pd.Series) -> tuple[pd.Series, list[Found]]:
    """The column converted to its type, and the rows that fail a check (vectorised)."""
    kind = column.type
    null = s.isna().to_numpy()
    values, wrong = _convert(kind, s)
    found: list[Found] = []
    if not column.holds_missing:
        found.append((AnomalyKind.NULLS, null, "missing value in a required column", False))
    found.append((AnomalyKind.TYPE, wrong, f"expected {kind}, got", True))
    ok = ~null & ~wrong
    schema = column.schema
    lo, hi = (schema.min, schema.max) if schema is not None else (None, None)
    if kind in FLOATS | INTEGERS:
        floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(floats)
        if kind in FLOATS and not (schema is not None and schema.allow_infinite):
            found.append((AnomalyKind.NON_FINITE, ok & ~finite, "not a finite number:", True))
        limits = LIMITS.get(kind)
        if limits is not None:
            outside = ok & finite & ((floats < limits[0]) | (floats > limits[1]))
            found.append((AnomalyKind.OUT_OF_RANGE, outside, f"out of range for {kind}:", True))
        if lo is not None or hi is not None:
            found.append(
                (AnomalyKind.OUT_OF_RANGE, ok & _outside(floats, lo, hi), _range(lo, hi), True)
            )
    elif kind == "datetime" and (lo is not None or hi is not None):
        bounds = [None if b is None else utc_naive(b) for b in (lo, hi)]
        found.append(
            (AnomalyKind.OUT_OF_RANGE, ok & _outside(values, *bounds), _range(lo, hi), True)
        )
    if schema is not None and schema.type == LogicalType.CATEGORICAL and schema.domain:
        unseen = ~s.astype("string").isin(list(schema.domain)).to_numpy(dtype=bool)
        found.append((AnomalyKind.UNSEEN_CATEGORY, ok & unseen, "not in the domain:", True))
    return values, [f for f in found if f[1].any()]


def _outside(values: Any, lo: Any, hi: Any) -> np.ndarray[Any, Any]:
    """Values below ``lo`` or above ``hi`` (None: no bound); NaN and NaT are never outside."""
    none = np.zeros(len(values), bool)
    with np.errstate(invalid="ignore"):
        low = np.asarray(values < lo, dtype=bool) if lo is not None else none
        high = np.asarray(values > hi, dtype=bool) if hi is not None else none
    outside: np.ndarray[Any, Any] = low | high
    return outside


def _range(lo: Any, hi: Any) -> str:
    return f"outside [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]:"


@dataclass(slots=True)
class Tally:
    """Problems over every chunk checked: rows and a few example values per column and kind."""

    found: dict[tuple[str, AnomalyKind], Problem] = field(default_factory=dict)

    def add(self, column: str, kind: AnomalyKind, what: str, rows: int, examples: Any) -> None:
        old = self.found.get((column, kind))
        seen = old.examples if old else ()
        fresh = [e for e in dict.fromkeys(examples) if e not in seen]
        self.found[(column, kind)] = Problem(
            column=column,
            kind=kind,
            what=old.what if old else what,
            rows=rows + (old.rows if old else 0),
            examples=(*seen, *fresh)[:MAX_EXAMPLES],
        )

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(self.found.values())


def check_rows(
    frame: pd.DataFrame, columns: Sequence[InputColumn], tally: Tally
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], dict[str, pd.Series]]:
    """Which rows of ``frame`` are bad, why (one text per row), and the converted columns."""
    rows = len(frame)
    bad = np.zeros(rows, bool)
    reasons = np.full(rows, "", dtype=object)
    typed: dict[str, pd.Series] = {}
    for column in columns:
        if column.name not in frame.columns:
            continue  # a data schema column the input does not have: not a model input
        s = frame[column.name]
        typed[column.name], found = check_column(column, s)
        for kind, mask, what, show in found:
            text: Any = f"{column.name}: {what}"
            examples: list[str] = []
            if show:  # the reason names the value: "a: expected double, got 'abc'"
                values = _shown(s[mask])
                examples = values.iloc[: MAX_EXAMPLES * 4].tolist()
                text = (text + " '" + values + "'").to_numpy(dtype=object)
            here = reasons[mask]
            reasons[mask] = np.where(here == "", text, here + "; " + text)
            bad |= mask
            summary = what.removesuffix(":").removesuffix(", got")
            tally.add(column.name, kind, summary, int(mask.sum()), examples)
    return bad, reasons, typed


# -- reading the input and writing the outputs -----------------------------------------------


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


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Bad rows as they were read, every column as text (nulls stay null)."""
    return pd.DataFrame({c: frame[c].astype("string") for c in frame.columns})


def _target(path: Path | str, what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        shown = f"'{path.suffix}'" if path.suffix else "(no suffix)"
        raise UsageError(f"{what} {path}: unknown file format {shown}", hint=FORMATS_HINT)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory", hint="give a file name")
    return path


# -- the job ---------------------------------------------------------------------------------

ProgressCallback = Callable[[BatchProgress], None]


def predict_batch(
    project: Project,
    mv: ModelVersion | str,
    input_path: Path | str,
    output_path: Path | str,
    *,
    quarantine: Path | str | None = None,
    chunk_rows: int = 100_000,
    progress: ProgressCallback | None = None,
    columns: Sequence[str] | None = None,
) -> BatchReport:
    """Predict every row of ``input_path`` with the package of ``mv`` into ``output_path``.

    Each chunk of ``chunk_rows`` rows is checked first. Without ``quarantine`` the first chunk
    with a bad row refuses the job (:class:`BatchRefused`, exit code 1) and no output is left;
    with it, bad rows go to that file with ``_row`` and ``_reason`` columns and the rest are
    predicted. A model input missing from the file is a UsageError before anything runs.
    ``columns`` chooses the input columns copied to the output (default: all of them).
    """
    if chunk_rows < 1:
        raise UsageError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if isinstance(mv, str):
        mv = resolve_version(project.metadata, mv)
    source = InputFile(Path(input_path))
    output = _target(output_path, "OUTPUT")
    aside = None if quarantine is None else _target(quarantine, "the quarantine file")
    paths = [p.resolve() for p in (source.path, output, aside) if p is not None]
    if len(set(paths)) < len(paths):
        raise UsageError("the input, the output and the quarantine file must be different files")
    with tempfile.TemporaryDirectory(prefix="conveyor-predict-") as tmp:
        package = read_package(open_package(project, mv, Path(tmp) / "package"))
        job = BatchJob(project, mv, package, source, output, aside, columns, chunk_rows)
        return job.run(progress)


def prediction_columns(model: Any, method: str, golden: list[Any]) -> tuple[list[str], Any]:
    """Names and dtype of the prediction columns, from the shape of the golden predictions."""
    sample = np.asarray(golden)
    width = sample.shape[1] if sample.ndim == 2 else 0
    if method == "predict_proba":
        classes = getattr(model, "classes_", None)
        labels = [str(c) for c in classes] if classes is not None else []
        labels = labels if len(labels) == width else [str(i) for i in range(width)]
        return [f"proba_{c}" for c in labels], np.float64
    names = [f"prediction_{i}" for i in range(width)] if width else ["prediction"]
    return names, object if sample.dtype.kind in "UO" else sample.dtype


class BatchJob:
    """One batch prediction: checked before the run starts, then run and recorded."""

    def __init__(
        self,
        project: Project,
        mv: ModelVersion,
        package: Package,
        source: InputFile,
        output: Path,
        aside: Path | None,
        columns: Sequence[str] | None,
        chunk_rows: int,
    ) -> None:
        self.project, self.mv, self.package, self.source = project, mv, package, source
        self.output, self.aside, self.chunk_rows = output, aside, chunk_rows
        self.model = package.load_model(project.config.trust.skops_types)
        if package.predict not in ("predict", "predict_proba"):
            raise UsageError(
                f"the package of {mv.ref} predicts with '{package.predict}'",
                hint="batch prediction calls predict or predict_proba",
            )
        self.method: Predict = "predict" if package.predict == "predict" else "predict_proba"
        schema = package_schema(package)
        self.against = "signature" + (" and data schema" if schema else "")
        self.columns = input_columns(package, schema)
        self.features = [c for c in self.columns if c.feature]
        missing = [c.name for c in self.features if c.name not in source.columns]
        if missing:
            wanted = ", ".join(f"{c.name} ({c.type})" for c in self.features)
            guess = did_you_mean(missing[0], source.columns)
            raise UsageError(
                f"{source.path}: missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}, which {mv.ref} needs; nothing was run",
                hint=(f"{guess} " if guess else "") + f"the model's inputs are: {wanted}",
            )
        self.names, self.dtype = prediction_columns(
            self.model, self.method, package.golden_predictions()
        )
        self.typed = {c.name: str(c.type) for c in self.features}
        self.carried = self._carried(columns)
        self.text = [c for c in source.columns if self.typed.get(c, "string") in TEXT_TYPES]
        self.run_id, self.owner = new_run_id(), lease.owner_id()
        self.rows = self.chunks = self.predicted = self.quarantined = self.refused = 0
        self.tally = Tally()
        self.out, self.bad = Sink(output), Sink(aside) if aside else None

    def _carried(self, columns: Sequence[str] | None) -> list[str]:
        carried = list(self.source.columns if columns is None else dict.fromkeys(columns))
        unknown = [c for c in carried if c not in self.source.columns]
        if unknown:
            raise UsageError(
                f"--columns: {self.source.path} has no column {unknown[0]!r}",
                hint=did_you_mean(unknown[0], self.source.columns)
                or f"its columns: {', '.join(self.source.columns[:20])}",
            )
        taken = [c for c in carried if c in self.names]
        taken += [c for c in self.source.columns if self.aside and c in (ROW, REASON)]
        if taken:
            raise UsageError(
                f"{self.source.path} has a column named {taken[0]!r}, which the job writes",
                hint="rename the column in the input (or leave it out of OUTPUT with --columns)",
            )
        return carried

    # -- the run ---------------------------------------------------------------------------
    def run(self, progress: ProgressCallback | None) -> BatchReport:
        self.started = time.monotonic()
        self.input_digest, self.total = self.source.digest()
        self._start()
        bad_chunk: tuple[int, int, int] | None = None
        try:
            heartbeat = self.project.config.heartbeat_seconds
            with lease.Heartbeat(self.project.metadata, self.run_id, self.owner, heartbeat) as hb:
                self._emit(progress)
                for frame in self.source.chunks(self.chunk_rows, self.text):
                    if hb.lost:
                        raise LeaseLostError(f"run {self.run_id} lost its lease; it was stopped")
                    bad_chunk = self._chunk(frame)
                    if bad_chunk is not None:
                        break
                    self._emit(progress)
                if bad_chunk is None:
                    return self._commit()
        except KeyboardInterrupt:
            self._end(StepStatus.CANCELLED, RunStatus.CANCELLED, "cancelled by the user")
            raise Cancelled(f"run {self.run_id} cancelled; no output was written") from None
        except LeaseLostError:
            self._discard()
            raise
        except BaseException as exc:
            self._end(StepStatus.FAILED, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        assert bad_chunk is not None
        raise self._refuse(*bad_chunk)

    def _emit(self, progress: ProgressCallback | None) -> None:
        if progress is not None:
            progress(
                BatchProgress(
                    run_id=self.run_id,
                    rows=self.rows,
                    total=self.total,
                    chunks=self.chunks,
                    predicted=self.predicted,
                    quarantined=self.quarantined,
                )
            )

    def _chunk(self, frame: pd.DataFrame) -> tuple[int, int, int] | None:
        """Check, set aside and predict one chunk; (chunk, first row, rows) when it refuses."""
        offset = self.rows
        self.rows += len(frame)
        self.chunks += 1
        bad, reasons, typed = check_rows(frame, self.columns, self.tally)
        count = int(bad.sum())
        if count and self.bad is None:
            self.refused = count
            return self.chunks, offset, len(frame)
        if count and self.bad is not None:
            aside = _as_text(frame[bad])
            aside[ROW] = np.arange(offset, offset + len(frame), dtype=np.int64)[bad]
            aside[REASON] = pd.array(reasons[bad], dtype="string")
            self.bad.write(aside)
            self.quarantined += count
        good = ~bad
        if good.any():
            self.out.write(self._predict(frame[good], {k: v[good] for k, v in typed.items()}))
            self.predicted += int(good.sum())
        return None

    def _predict(self, frame: pd.DataFrame, typed: dict[str, pd.Series]) -> pd.DataFrame:
        inputs = pd.DataFrame({c.name: _final(c.type, typed[c.name]) for c in self.features})
        out = model_output(self.model, inputs, self.method)
        result = pd.DataFrame(
            {c: inputs[c] if c in self.typed else frame[c] for c in self.carried}, index=frame.index
        )
        values = out.reshape(len(frame), -1)
        if values.shape[1] != len(self.names):
            raise IntegrityError(
                f"{self.mv.ref}.{self.method}() gave {values.shape[1]} columns, its golden "
                f"predictions {len(self.names)}",
                hint="the package does not match its model; package the version again",
            )
        for i, name in enumerate(self.names):
            result[name] = values[:, i]
        return result

    def _empty(self, quarantine: bool) -> pd.DataFrame:
        """The columns of the output (or of the quarantine file) without any row."""
        if quarantine or self.source.csv:
            base = pd.DataFrame({c: pd.Series(dtype="string") for c in self.source.columns})
        else:
            base = self.source.dataset().schema.empty_table().to_pandas()
        if quarantine:
            return base.assign(
                **{ROW: pd.Series(dtype=np.int64), REASON: pd.Series(dtype="string")}
            )
        frame = pd.DataFrame({c: base[c] for c in self.carried})
        for c in self.features:
            if c.name in frame:
                frame[c.name] = _final(c.type, frame[c.name])
        return frame.assign(**{n: pd.Series(dtype=self.dtype) for n in self.names})

    # -- records ---------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.mv.ref,
            "method": self.method,
            "input": str(self.source.path.resolve()),
            "output": str(self.output.resolve()),
            "chunk_rows": self.chunk_rows,
        }
        if self.aside is not None:
            params["quarantine"] = str(self.aside.resolve())
        if self.carried != self.source.columns:
            params["columns"] = self.carried
        return params

    def _inputs(self) -> dict[str, ArtifactInfo]:
        """The model artifact, and the package as the directory artifact it was stored as."""
        digest, directory = str(self.mv.package_digest), self.package.directory
        tar = self.project.artifacts.blobs.local_path(digest)
        return {
            "model": queries.find_artifact(self.project.metadata, self.mv.digest),
            "package": ArtifactInfo(
                digest=digest,
                materializer="directory.tar",
                type_name=f"{type(directory).__module__}.{type(directory).__qualname__}",
                size=tar.stat().st_size,
                meta={
                    "filename": "package",
                    "files": sum(1 for p in directory.rglob("*") if p.is_file()),
                    "tree": tree_digest(directory),
                },
            ),
        }

    def _start(self) -> None:
        """Record the run (with a lease, as ``conveyor run`` does) and its running step."""
        store, cfg = self.project.metadata, self.project.config
        lease.reap(store, ttl_s=cfg.heartbeat_seconds * 6)
        git = git_state(self.project.root)
        diff = self.project.artifacts.blobs.put_bytes(git.diff)[0] if git.dirty else None
        params, inputs = self._params(), self._inputs()
        store.create_run(
            run_id=self.run_id,
            project=cfg.name,
            pipeline=f"predict:{self.mv.name}",
            owner=self.owner,
            git={
                "commit": git.commit,
                "dirty": git.dirty,
                "diff_digest": diff,
                "subdir": git.subdir,
            },
            params=params,
            step_params={},
            environment={
                "python": platform.python_version(),
                "platform": platform.platform(),
                "executable": sys.executable,
            },
            tags={"model": self.mv.ref, "job": "batch prediction"},
        )
        self.step_id = store.start_step(
            run_id=self.run_id,
            name=STEP,
            position=0,
            cache_key=None,  # a prediction job is never reused from a cache
            key_parts={
                "params": params,
                "inputs": {name: info.digest for name, info in inputs.items()},
                "files": {params["input"]: self.input_digest},  # digest only: see the docs
            },
            inputs=inputs,
            owner=self.owner,
        )

    def _commit(self) -> BatchReport:
        artifacts = self.project.artifacts
        self.out.commit(self._empty(quarantine=False))
        outputs = {"predictions": artifacts.save(self.output)}
        if self.bad is not None and self.aside is not None:
            self.bad.commit(self._empty(quarantine=True))
            outputs["quarantine"] = artifacts.save(self.aside)
        checks = self._checks()
        store = self.project.metadata
        store.finish_step(
            self.step_id,
            run_id=self.run_id,
            owner=self.owner,
            status=StepStatus.SUCCEEDED,
            duration_s=time.monotonic() - self.started,
            outputs=outputs,
            step_name=STEP,
            metrics=self._metrics(),
            checks=checks,
        )
        if not store.finish_run(self.run_id, RunStatus.SUCCEEDED, owner=self.owner):
            raise LeaseLostError(f"run {self.run_id} lost its lease before it finished")
        return self._report("succeeded", outputs, checks)

    def _refuse(self, chunk: int, first: int, rows: int) -> BatchRefused:
        last = first + rows - 1
        headline = (
            f"{self.source.path}: {self.refused:,} of {rows:,} rows in chunk {chunk} (rows "
            f"{first:,}-{last:,}) are not valid input for {self.mv.ref}; nothing was written"
        )
        checks = self._checks()
        self._end(StepStatus.FAILED, RunStatus.FAILED, headline, checks)
        details = "\n".join(f"  {p.describe()}" for p in self.tally.problems)
        return BatchRefused(
            f"{headline} (run {self.run_id})\n{details}",
            hint="fix those rows, or set them aside with --quarantine FILE (each with its "
            "_reason) and predict the others",
            report=self._report("refused", {}, checks),
        )

    def _end(
        self,
        step: StepStatus,
        status: RunStatus,
        error: str,
        checks: Sequence[CheckResult] | None = None,
    ) -> None:
        """Record a job that did not succeed; nothing it wrote is left behind."""
        self._discard()
        store = self.project.metadata
        with contextlib.suppress(LeaseLostError):  # the run is no longer ours to write
            store.finish_step(
                self.step_id,
                run_id=self.run_id,
                owner=self.owner,
                status=step,
                duration_s=time.monotonic() - self.started,
                error=error,
                step_name=STEP,
                metrics=self._metrics(),
                checks=self._checks() if checks is None else checks,
            )
        store.finish_run(self.run_id, status, error, owner=self.owner)

    def _discard(self) -> None:
        self.out.discard()
        if self.bad is not None:
            self.bad.discard()

    def _metrics(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self.started, 1e-9)
        return {
            "rows": float(self.rows),
            "predicted": float(self.predicted),
            "quarantined": float(self.quarantined),
            "chunks": float(self.chunks),
            "rows_per_second": self.rows / seconds,
        }

    def _checks(self) -> list[CheckResult]:
        severity = Severity.WARNING if self.aside is not None else Severity.ERROR
        by_column: dict[str, list[Problem]] = {}
        for p in self.tally.problems:
            by_column.setdefault(p.column, []).append(p)
        results = [
            CheckResult(
                name=f"input:{column}",
                kind="data",
                passed=False,
                severity=severity,
                metrics={str(p.kind): float(p.rows) for p in found},
                message="; ".join(p.describe(column=False) for p in found),
                details={"column": column, "problems": [p.to_json() for p in found]},
            )
            for column, found in by_column.items()
        ]
        bad = self.quarantined + self.refused
        against = f"{self.mv.ref}'s {self.against}"
        results.append(
            CheckResult(
                name="input",
                kind="data",
                passed=not by_column,
                severity=severity,
                metrics={
                    "rows": float(self.rows),
                    "bad_rows": float(bad),
                    "quarantined": float(self.quarantined),
                },
                message=f"{self.rows:,} rows checked against {against}: "
                + (f"{bad:,} bad" if bad else "all valid"),
                details={
                    "input": str(self.source.path),
                    "checked": [c.name for c in self.columns if c.name in self.source.columns],
                },
            )
        )
        return results

    def _report(
        self, status: str, outputs: dict[str, ArtifactInfo], checks: Sequence[CheckResult]
    ) -> BatchReport:
        aside = outputs.get("quarantine")
        return BatchReport(
            run_id=self.run_id,
            status=status,
            model=self.mv.ref,
            method=self.method,
            model_digest=self.mv.digest,
            package_digest=str(self.mv.package_digest),
            input=str(self.source.path),
            input_digest=self.input_digest,
            output=str(self.output),
            output_digest=outputs["predictions"].digest if "predictions" in outputs else None,
            quarantine=None if self.aside is None else str(self.aside),
            quarantine_digest=aside.digest if aside else None,
            rows=self.rows,
            predicted=self.predicted,
            quarantined=self.quarantined,
            chunks=self.chunks,
            duration_s=time.monotonic() - self.started,
            problems=self.tally.problems,
            checks=tuple(checks),
        )


def _final(kind: str | None, values: pd.Series) -> pd.Series:
    """Checked values in the dtype the model was trained with (as the prediction service)."""
    dtype = {**FINAL, "boolean": "bool", "datetime": "datetime64[ns]"}.get(str(kind))
    return values if dtype is None else values.astype(np.dtype(dtype))
