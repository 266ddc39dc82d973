"""``conveyor data``: schemas, validation, profiles and drift of data files (CSV or Parquet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from conveyor.cli.output import emit_json, json_option, parse_pairs, result, status
from conveyor.errors import EXIT_FAILED, UsageError

data_file = click.Path(exists=False, path_type=Path)


@click.group()
def data() -> None:
    """Infer schemas, validate data, profile it and measure drift (CSV and Parquet files)."""


@data.group()
def schema() -> None:
    """Infer and inspect data schemas."""


@schema.command("infer")
@click.argument("data_path", metavar="DATA", type=data_file)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the schema (YAML, human-editable).",
)
@click.option(
    "--max-categories",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="Text columns with at most this many distinct values are categorical.",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@json_option
def infer(data_path: Path, output: Path, max_categories: int, force: bool, as_json: bool) -> None:
    """Infer a schema from DATA: type, nullability, range, domain and uniqueness per column."""
    from conveyor.checks.datasets import read_table
    from conveyor.checks.schema import InferOptions, infer_schema, save_schema, schema_to_yaml

    if output.exists() and not force:
        raise UsageError(f"{output} already exists", hint="pass --force to overwrite it")
    frame = read_table(data_path)
    inferred = infer_schema(frame, InferOptions(max_categories=max_categories))
    save_schema(inferred, output)
    status(f"inferred {len(inferred.columns)} columns from {len(frame)} rows of {data_path}")
    if as_json:
        import yaml

        emit_json(yaml.safe_load(schema_to_yaml(inferred)))
    else:
        result(f"wrote {output}")


@data.command("validate")
@click.argument("data_path", metavar="DATA", type=data_file)
@click.option(
    "-s",
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The schema file (from 'conveyor data schema infer').",
)
@click.option("--markdown", is_flag=True, help="Print the anomalies as a Markdown table.")
@json_option
@click.pass_context
def validate_cmd(
    ctx: click.Context, data_path: Path, schema_path: Path, markdown: bool, as_json: bool
) -> None:
    """Validate DATA against a schema; list every anomaly per column.

    Exits 1 when a blocking (error-severity) anomaly is present.
    """
    from conveyor.checks.datasets import read_table
    from conveyor.checks.schema import load_schema
    from conveyor.checks.validation import validate

    report = validate(read_table(data_path), load_schema(schema_path))
    if as_json:
        click.echo(report.to_json())
    elif markdown:
        click.echo(report.to_markdown())
    else:
        click.echo(report.to_text())
    status(report.summary())
    if report.blocking:
        ctx.exit(EXIT_FAILED)


def _profile_or_frame(path: Path) -> Any:
    """A stored reference profile (JSON) or a data file."""
    if path.suffix == ".json":
        from conveyor.checks.profile import Profile

        try:
            return Profile.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{path} is not a profile written by 'conveyor data profile': {exc}",
                hint="give a CSV or Parquet file, or a profile",
            ) from None
    from conveyor.checks.datasets import read_table

    return read_table(path)


@data.command("profile")
@click.argument("data_path", metavar="DATA", type=data_file)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the profile (JSON).",
)
def profile_cmd(data_path: Path, output: Path) -> None:
    """Profile DATA (histograms, quantiles, category counts) as a reference for drift."""
    from conveyor.checks.datasets import read_table
    from conveyor.checks.profile import profile

    prof = profile(read_table(data_path))
    output.write_text(json.dumps(prof.to_json(), sort_keys=True), encoding="utf-8")
    result(f"wrote {output}")


@data.command("drift")
@click.argument("reference", metavar="REF", type=data_file)
@click.argument("current", metavar="CUR", type=data_file)
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="COLUMN=METHOD",
    help="Use METHOD (ks, chisquare, z, wasserstein, jensenshannon, psi) for COLUMN.",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Drift threshold for COLUMN (a p-value for tests, a distance otherwise).",
)
@click.option(
    "--drift-share",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Share of drifted features that makes the dataset drifted (default 0.5).",
)
@click.option("--markdown", is_flag=True, help="Print the report as Markdown.")
@json_option
@click.pass_context
def drift_cmd(
    ctx: click.Context,
    reference: Path,
    current: Path,
    methods: tuple[str, ...],
    thresholds: tuple[str, ...],
    drift_share: float | None,
    markdown: bool,
    as_json: bool,
) -> None:
    """Compare CUR with REF per feature; print method, statistic, threshold and verdict.

    REF is a data file or a profile from 'conveyor data profile'. Exits 1 when the
    dataset-level verdict is drift.
    """
    from conveyor.checks.datasets import read_table
    from conveyor.checks.drift import DriftOptions, drift

    options = DriftOptions(
        methods=parse_pairs(methods, "--method", "COLUMN"),
        thresholds={
            k: _float(v, k) for k, v in parse_pairs(thresholds, "--threshold", "COLUMN").items()
        },
        drift_share=drift_share if drift_share is not None else 0.5,
    )
    report = drift(_profile_or_frame(reference), read_table(current), options)
    if as_json:
        emit_json(report.to_json())
    elif markdown:
        click.echo(report.to_markdown())
    else:
        click.echo(report.to_text())
    if report.drifted:
        ctx.exit(EXIT_FAILED)


def _float(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--threshold {column}={text}: not a number") from None
