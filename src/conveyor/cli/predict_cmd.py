"""``conveyor predict``: batch prediction with a packaged model version."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import click

from conveyor.cli.output import console, emit_json, json_option, open_project_from, result, status

PLAIN_EVERY_S = 5.0  # progress lines in a log (not a terminal): at most one per interval


class ProgressReport:
    """Progress on stderr: a rich bar on a terminal, a plain line now and then otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.bar: Any = None
        self.task: Any = None
        self.last: Any = None
        self.printed: Any = None
        self.printed_at = 0.0

    def __call__(self, p: Any) -> None:
        if self.last is None:
            about = f", about {p.total:,} rows" if p.total is not None else ""
            status(f"run {p.run_id}: {self.what}{about}")
            if sys.stderr.isatty():
                self._start_bar(p.total)
        self.last = p
        if self.bar is not None:
            self.bar.update(self.task, completed=p.rows, total=max(p.total or 0, p.rows) or None)
        elif p.chunks and time.monotonic() - self.printed_at >= PLAIN_EVERY_S:
            self._line(p)

    def _start_bar(self, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("predict"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
        )
        self.task = self.bar.add_task("predict", total=total)
        self.bar.start()

    def _line(self, p: Any) -> None:
        of = f" of about {p.total:,}" if p.total is not None else ""
        chunks = "1 chunk" if p.chunks == 1 else f"{p.chunks:,} chunks"
        aside = f", {p.quarantined:,} set aside" if p.quarantined else ""
        status(f"  {p.rows:,}{of} rows read in {chunks}, {p.predicted:,} predicted{aside}")
        self.printed, self.printed_at = p, time.monotonic()

    def __enter__(self) -> ProgressReport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif kind is None and self.last is not None and self.last is not self.printed:
            self._line(self.last)  # the last line says where the job ended


@click.command()
@click.argument("model_ref", metavar="MODEL")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--quarantine",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Set rows that fail the input checks aside in FILE (.csv or .parquet) with _row and "
    "_reason columns, and predict the others. Without it, bad rows refuse the whole job.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Rows read, checked and predicted at a time (memory grows with it).",
)
@click.option(
    "--columns",
    "column_lists",
    multiple=True,
    metavar="NAMES",
    help="Input columns to copy into OUTPUT, comma-separated (default: all). Repeatable.",
)
@json_option
@click.pass_context
def predict(
    ctx: click.Context,
    model_ref: str,
    input_path: Path,
    output_path: Path,
    quarantine: Path | None,
    chunk_rows: int,
    column_lists: tuple[str, ...],
    as_json: bool,
) -> None:
    """Predict every row of INPUT with the package of MODEL and write OUTPUT.

    MODEL is NAME:VERSION, NAME:latest or NAME (its latest version), packaged with 'conveyor
    model package'. INPUT is a CSV file, a Parquet file or a directory of Parquet files;
    OUTPUT (.csv or .parquet) gets the input columns and the prediction columns. Rows are
    read in chunks and checked against the package's signature (and data schema) before the
    model sees them. The job is recorded as a run of pipeline 'predict:NAME'.

    Exit codes: 0 done; 1 bad rows refused the job (nothing is written); 2 a usage error,
    such as a model input column missing from INPUT.
    """
    from conveyor.registry.batch import BatchRefused, predict_batch
    from conveyor.registry.versions import resolve_version

    project = open_project_from(ctx)
    mv = resolve_version(project.metadata, model_ref)
    columns = [n.strip() for item in column_lists for n in item.split(",") if n.strip()]
    what = f"predicting {input_path} with {mv.ref} into {output_path}"
    try:
        with ProgressReport(what) as progress:
            report = predict_batch(
                project,
                mv,
                input_path,
                output_path,
                quarantine=quarantine,
                chunk_rows=chunk_rows,
                progress=progress,
                columns=columns or None,
            )
    except BatchRefused as refused:
        if as_json:
            emit_json(refused.report.to_json())
        raise
    if report.quarantined:
        status(f"set aside {report.quarantined:,} rows in {quarantine}:")
        for problem in report.problems:
            status(f"  {problem.describe()}")
    if as_json:
        emit_json(report.to_json())
    else:
        result(report.summary())
