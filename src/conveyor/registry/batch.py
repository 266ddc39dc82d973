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

Row checks are :mod:`conveyor.registry.batch_rows`, files :mod:`conveyor.registry.batch_files`;
their public names are importable from here too.
"""

from __future__ import annotations

import contextlib
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.model_output import Predict, model_output
from conveyor.core.checks import CheckResult
from conveyor.core.records import ArtifactInfo, RunStatus, StepStatus
from conveyor.engine import lease
from conveyor.engine.gitinfo import git_state
from conveyor.engine.project import Project
from conveyor.engine.run import Cancelled, new_run_id
from conveyor.errors import (
    IntegrityError,
    LeaseLostError,
    UsageError,
    did_you_mean,
)
from conveyor.registry.batch_files import FORMATS_HINT, InputFile, Sink, as_text, output_file
from conveyor.registry.batch_report import (
    BatchProgress,
    BatchRefused,
    BatchReport,
    ProgressCallback,
    input_checks,
)
from conveyor.registry.batch_rows import (
    FLOATS,
    HOLDS_MISSING,
    INTEGERS,
    LIMITS,
    MAX_EXAMPLES,
    SCHEMA_FILE,
    SCHEMA_TYPES,
    SHOWN_CHARS,
    TEXT_TYPES,
    TYPES,
    Found,
    InputColumn,
    Problem,
    Tally,
    check_column,
    check_rows,
    input_columns,
    package_schema,
)
from conveyor.registry.package_read import Package, extract_package
from conveyor.registry.versions import ModelVersion, resolve_version
from conveyor.store import queries
from conveyor.store.blobs import tree_digest

__all__ = [
    "FINAL",
    "FLOATS",
    "FORMATS_HINT",
    "HOLDS_MISSING",
    "INTEGERS",
    "LIMITS",
    "MAX_EXAMPLES",
    "REASON",
    "ROW",
    "SCHEMA_FILE",
    "SCHEMA_TYPES",
    "SHOWN_CHARS",
    "STEP",
    "TEXT_TYPES",
    "TYPES",
    "BatchJob",
    "BatchProgress",
    "BatchRefused",
    "BatchReport",
    "Found",
    "InputColumn",
    "InputFile",
    "Problem",
    "ProgressCallback",
    "Sink",
    "Tally",
    "check_column",
    "check_rows",
    "input_columns",
    "package_schema",
    "predict_batch",
    "prediction_columns",
]

STEP = "predict"
ROW, REASON = "_row", "_reason"
FINAL = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


# -- the job ---------------------------------------------------------------------------------


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
    output = output_file(output_path, "OUTPUT")
    aside = None if quarantine is None else output_file(quarantine, "the quarantine file")
    paths = [p.resolve() for p in (source.path, output, aside) if p is not None]
    if len(set(paths)) < len(paths):
        raise UsageError("the input, the output and the quarantine file must be different files")
    with tempfile.TemporaryDirectory(prefix="conveyor-predict-") as tmp:
        package = extract_package(project, mv, Path(tmp) / "package")
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
            aside = as_text(frame[bad])
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
        return input_checks(
            self.tally.problems,
            set_aside=self.aside is not None,
            rows=self.rows,
            bad=self.quarantined + self.refused,
            quarantined=self.quarantined,
            against=f"{self.mv.ref}'s {self.against}",
            source=str(self.source.path),
            checked=[c.name for c in self.columns if c.name in self.source.columns],
        )

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
