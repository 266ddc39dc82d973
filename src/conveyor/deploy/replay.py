"""Offline shadow: replay requests logged in an environment against a candidate version.

The prediction service logs every prediction (:mod:`conveyor.serve.prediction_log`) under
``<artifacts>/predictions/env=<environment>/hour=<hour>/``. The shadow gate reads the newest
of them (at most ``shadow.max_requests`` requests), turns each logged input row back into
the candidate's typed signature columns, predicts each logged request as one call (so its
latency is the candidate's own per-request time), and compares the answers with the logged
ones: the same labels, or scores within ``shadow.tolerance``.

Checks: ``shadow.requests`` (at least ``shadow.min_requests`` logged requests),
``shadow.inputs`` (the logs hold every input column the candidate needs, in a type that
fits), ``shadow.agreement`` (at least ``shadow.min_agreement`` of the rows agree). Reading
Parquet never unpickles anything; the candidate is a package loaded under the skops allowlist.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from conveyor.config_delivery import ShadowGateConfig
from conveyor.core.checks import CheckResult, Severity, blocking_failures
from conveyor.deploy.analysis import compare_shadow, percentile
from conveyor.serve.model import PREDICT_ERRORS, ServedModel
from conveyor.serve.prediction_log import PREFIX
from conveyor.serve.problems import Refused
from conveyor.serve.signature import Array, ColumnSpec, Signature, convert_array

log = logging.getLogger("conveyor.deploy")

KIND = "serving"
HOUR = "%Y-%m-%dT%H"
ROWS_PER_REQUEST = 100  # rows read per request allowed, on average, before reading stops
MAX_ROWS = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """What replaying ``source``'s logged requests against ``candidate`` showed. Figures
    that could not be measured are NaN (``null`` in JSON)."""

    source: str
    candidate: str
    results: list[CheckResult]
    passed: bool
    requests: int = 0
    rows: int = 0
    agreement: float = 0.0
    max_abs_diff: float = math.nan
    candidate_p50_ms: float = math.nan
    candidate_p99_ms: float = math.nan
    logged_p99_ms: float = math.nan
    versions: list[str] = field(default_factory=list)  # model versions that answered

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            doc[f.name] = value
        doc["versions"] = list(self.versions)
        doc["results"] = [r.to_json() for r in self.results]
        return doc

    def to_markdown(self) -> str:
        verdict = "passed" if self.passed else "failed"
        logged = ", ".join(self.versions) or "none"
        lines = [
            f"### Shadow replay of {self.candidate} against '{self.source}': {verdict}",
            "",
            "| | |",
            "|---|---|",
            f"| Requests replayed | {self.requests:,} ({self.rows:,} rows), answered by "
            f"version {_cell(logged)} |",
            f"| Agreement | {_share(self.agreement)} of rows (largest score difference "
            f"{_number(self.max_abs_diff)}) |",
            f"| Candidate latency (model call) | p50 {_ms(self.candidate_p50_ms)}, "
            f"p99 {_ms(self.candidate_p99_ms)} |",
            f"| Logged latency (whole request) | p99 {_ms(self.logged_p99_ms)} |",
            "",
            "| Check | Result | Message |",
            "|---|---|---|",
        ]
        for r in self.results:
            outcome = "pass" if r.passed else "FAIL" if r.severity == Severity.ERROR else "warn"
            lines.append(f"| `{r.name}` | {outcome} | {_cell(r.message)} |")
        return "\n".join(lines) + "\n"


def read_logged_requests(
    artifacts_url: str,
    environment: str,
    *,
    max_rows: int,
    since: datetime | None = None,
    max_requests: int | None = None,
) -> Any:
    """The newest logged prediction rows of ``environment`` as a ``pyarrow.Table``, newest
    request first (its rows in order), at most ``max_rows`` rows of at most ``max_requests``
    requests, none older than ``since``. Empty (no columns) when nothing is logged."""
    import fsspec
    import pyarrow as pa
    import pyarrow.compute as pc

    fs, root = fsspec.core.url_to_fs(artifacts_url)
    base = f"{root.rstrip('/')}/{PREFIX}/env={environment}"
    hours = sorted(_children(fs, base, "hour="), reverse=True)
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        first = since.astimezone(UTC).strftime(HOUR)
        hours = [h for h in hours if h.rpartition("hour=")[2] >= first]
    tables: list[Any] = []
    rows = requests = 0
    for hour in hours:
        for path in _children(fs, hour, "part-"):
            table = _read_part(fs, path, since)
            if table is not None and table.num_rows:
                tables.append(table)
                rows += table.num_rows
                requests += pc.count_distinct(table.column("request_id")).as_py()
        # A request's rows are all in one file: the files' request counts add up.
        if rows >= max_rows or (max_requests is not None and requests >= max_requests):
            break
    if not tables:
        return pa.table({})
    table = _concat(tables).sort_by(
        [("timestamp", "descending"), ("request_id", "ascending"), ("row", "ascending")]
    )
    if max_requests is not None:
        starts = _request_starts(table)
        if len(starts) > max_requests:
            table = table.slice(0, int(starts[max_requests]))
    return table.slice(0, max_rows)


def replay(
    artifacts_url: str, source_env: str, candidate: ServedModel, gate: ShadowGateConfig
) -> ReplayReport:
    """Replay ``source_env``'s newest logged requests (at most ``gate.max_requests``) against
    ``candidate`` and judge the shadow gate. A failing gate is a report, not an exception."""
    table = read_logged_requests(
        artifacts_url,
        source_env,
        max_rows=min(gate.max_requests * ROWS_PER_REQUEST, MAX_ROWS),
        max_requests=gate.max_requests,
    )
    if table.num_rows == 0:
        check = _no_logs(artifacts_url, source_env, gate)
        return _report(source_env, candidate, [check], requests=0, rows=0)
    starts = _request_starts(table)
    figures: dict[str, Any] = {
        "requests": len(starts),
        "rows": table.num_rows,
        "logged_p99_ms": percentile(table.column("latency_ms").to_numpy()[starts], 99),
        "versions": list(dict.fromkeys(table.column("model_version").to_pylist())),
    }
    results = [_requests_check(len(starts), gate, source_env)]
    columns, problem = logged_columns(table, candidate.signature, source_env)
    if problem is not None:
        return _report(source_env, candidate, [*results, problem], **figures)
    results.append(
        CheckResult(
            name="shadow.inputs",
            kind=KIND,
            passed=True,
            message=f"the logged requests hold all {len(columns)} of the candidate's input columns",
        )
    )
    bounds = [*starts.tolist(), table.num_rows]
    outputs, seconds, failures = _predict(candidate, columns, bounds)
    logged = logged_outputs(table.column("outputs"))
    if gate.compare == "labels":
        logged = as_labels(logged)
        outputs = [as_labels(o) if o is not None else None for o in outputs]
    agreement, max_diff = _agreement(logged, outputs, bounds, gate.tolerance)
    results.append(_agreement_check(agreement, max_diff, table.num_rows, failures, gate))
    times = np.array(seconds) * 1000
    return _report(
        source_env,
        candidate,
        results,
        agreement=agreement,
        max_abs_diff=max_diff,
        candidate_p50_ms=percentile(times, 50),
        candidate_p99_ms=percentile(times, 99),
        **figures,
    )


def logged_columns(
    table: Any, signature: Signature, source: str
) -> tuple[list[Array], CheckResult | None]:
    """The logged ``inputs`` as the candidate's typed columns in signature order, or a failed
    ``shadow.inputs`` check naming the first column that is missing or does not fit."""
    inputs = table.column("inputs").combine_chunks()
    logged = [inputs.type.field(i).name for i in range(inputs.type.num_fields)]
    columns: list[Array] = []
    for spec in signature.columns:
        if spec.name not in logged:
            return [], _inputs_failure(
                spec,
                f"the candidate's input column '{spec.name}' is not in the requests logged "
                f"in '{source}' (they hold {', '.join(logged) or 'no columns'})",
            )
        values = inputs.field(spec.name)
        try:
            columns.append(_typed(spec, values))
        except Refused as exc:
            return [], _inputs_failure(
                spec,
                f"the logged column '{spec.name}' ({values.type}) does not fit the "
                f"candidate's {spec.type} column: {exc.message}",
            )
    return columns, None


def logged_outputs(column: Any) -> Array:
    """The logged ``outputs`` as numpy: 1-D for one output per row, else rows x width."""
    import pyarrow as pa

    values = column.combine_chunks()
    if pa.types.is_fixed_size_list(values.type):
        width = values.type.list_size
        return np.asarray(values.flatten().to_numpy(zero_copy_only=False)).reshape(-1, width)
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        return np.array(values.to_pylist())
    return np.asarray(values.to_numpy(zero_copy_only=False))


# -- reading ---------------------------------------------------------------------------------


def _children(fs: Any, directory: str, prefix: str) -> list[str]:
    try:
        names = fs.ls(directory, detail=False)
    except FileNotFoundError:
        return []
    return sorted(str(n) for n in names if str(n).rstrip("/").rpartition("/")[2].startswith(prefix))


def _read_part(fs: Any, path: str, since: datetime | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.endswith(".parquet"):
        return None
    try:
        with fs.open(path, "rb") as f:
            table = pq.read_table(f)
    except (OSError, pa.ArrowInvalid) as exc:  # a file a reader cannot use: skip it, say so
        log.warning("skipping unreadable prediction log file %s: %s", path, exc)
        return None
    if since is not None:
        table = table.filter(pc.field("timestamp") >= pa.scalar(since, pa.timestamp("us", "UTC")))
    return table


def _concat(tables: list[Any]) -> Any:
    """One table; when versions logged incompatible inputs or outputs, only the files like
    the newest (the first hour read) are kept."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
        newest = max(tables, key=lambda t: t.column("timestamp").to_numpy().max())
        same = [t for t in tables if t.schema.equals(newest.schema)]
        log.warning(
            "replaying %d of %d log files (the rest differ in schema)", len(same), len(tables)
        )
        return pa.concat_tables(same)


def _request_starts(table: Any) -> Array:
    """The index of each request's first row (a request's rows are contiguous)."""
    ids = table.column("request_id").to_numpy(zero_copy_only=False)
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])


def _typed(spec: ColumnSpec, values: Any) -> Array:
    import pyarrow as pa

    if spec.type == "datetime" and pa.types.is_timestamp(values.type):
        stamps = values.cast(pa.timestamp("ns", values.type.tz)).to_numpy(zero_copy_only=False)
        return np.asarray(stamps).astype("datetime64[ns]")
    return convert_array(spec, np.asarray(values.to_numpy(zero_copy_only=False)), spec.name)


# -- predicting and judging ------------------------------------------------------------------


def _predict(
    candidate: ServedModel, columns: list[Array], bounds: list[int]
) -> tuple[list[Array | None], list[float], list[str]]:
    """Each request's outputs (None when the candidate failed on it), seconds per request,
    and the failures' messages."""
    outputs: list[Array | None] = []
    seconds: list[float] = []
    failures: list[str] = []
    for start, end in itertools.pairwise(bounds):
        request = [c[start:end] for c in columns]
        began = time.perf_counter()
        try:
            out = candidate.predict(request)
        except PREDICT_ERRORS as exc:
            outputs.append(None)
            failures.append(f"{type(exc).__name__}: {exc}")
            continue
        seconds.append(time.perf_counter() - began)
        outputs.append(out)
    return outputs, seconds, failures


def as_labels(outputs: Array) -> Array:
    """The label each row's output stands for: the most probable class of a row of class
    probabilities, ``score >= 0.5`` for one probability per row; labels stay as they are."""
    values = np.asarray(outputs)
    if values.dtype.kind != "f":
        return values
    if values.ndim == 2 and values.shape[1] > 1:
        labels: Array = np.argmax(values, axis=1)
        return labels
    flat = values.reshape(len(values))
    if len(flat) and np.nanmin(flat) >= 0.0 and np.nanmax(flat) <= 1.0:
        return (flat >= 0.5).astype(np.int64)
    return values


def _agreement(
    logged: Array,
    outputs: list[Array | None],
    bounds: list[int],
    tolerance: float,
) -> tuple[float, float]:
    """Agreement over every row (a failed request's rows disagree) and the largest
    difference over the rows the candidate answered."""
    answered = [i for i, out in enumerate(outputs) if out is not None]
    if not answered:
        return 0.0, math.nan
    rows = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in answered])
    ours = np.concatenate([o for o in outputs if o is not None])
    if len(ours) != len(rows):
        return 0.0, math.nan  # the candidate answered a different number of rows
    share, max_diff = compare_shadow(logged[rows], ours, tolerance)
    total = bounds[-1]
    return share * len(rows) / total, max_diff


def _no_logs(artifacts_url: str, source: str, gate: ShadowGateConfig) -> CheckResult:
    where = f"{artifacts_url.rstrip('/')}/{PREFIX}/env={source}"
    return CheckResult(
        name="shadow.requests",
        kind=KIND,
        passed=False,
        metrics={"requests": 0.0, "min_requests": float(gate.min_requests)},
        message=f"no predictions are logged for environment '{source}' (under {where}); "
        f"send traffic to '{source}', whose service logs every prediction, then run the "
        "shadow gate again",
    )


def _requests_check(requests: int, gate: ShadowGateConfig, source: str) -> CheckResult:
    need = gate.min_requests
    passed = requests >= need
    return CheckResult(
        name="shadow.requests",
        kind=KIND,
        passed=passed,
        metrics={"requests": float(requests), "min_requests": float(need)},
        message=f"{requests:,} logged requests from '{source}' replayed (at least {need:,} needed)"
        if passed
        else f"only {requests:,} requests are logged in '{source}', fewer than the {need:,} "
        f"the shadow gate needs; send more traffic to '{source}' or lower "
        "shadow.min_requests",
    )


def _agreement_check(
    agreement: float, max_diff: float, rows: int, failures: list[str], gate: ShadowGateConfig
) -> CheckResult:
    limit = gate.min_agreement
    passed = agreement >= limit
    message = (
        f"{_share(agreement)} of {rows:,} rows agree with the logged predictions "
        f"({'at least' if passed else 'below the limit of'} {_share(limit)}; "
        + (
            "compared as predicted labels)"
            if gate.compare == "labels"
            else f"scores agree within {gate.tolerance:g}, the largest difference is "
            f"{_number(max_diff)})"
        )
    )
    if failures:
        message += f"; the candidate failed on {len(failures):,} requests, first: {failures[0]}"
    return CheckResult(
        name="shadow.agreement",
        kind=KIND,
        passed=passed,
        metrics={
            "agreement": agreement,
            "min_agreement": limit,
            "max_abs_diff": max_diff,
            "failed_requests": float(len(failures)),
        },
        message=message,
    )


def _inputs_failure(spec: ColumnSpec, message: str) -> CheckResult:
    return CheckResult(
        name="shadow.inputs",
        kind=KIND,
        passed=False,
        message=message,
        details={"column": spec.name, "type": spec.type},
    )


def _report(
    source: str, candidate: ServedModel, results: list[CheckResult], **figures: Any
) -> ReplayReport:
    passed = bool(results) and not blocking_failures(results)
    return ReplayReport(
        source=source, candidate=candidate.ref, results=results, passed=passed, **figures
    )


def _share(x: float) -> str:
    return f"{x:.1%}" if x in (0.0, 1.0) or 0.001 < x < 0.999 else f"{x:.2%}"


def _number(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "n/a"


def _ms(x: float) -> str:
    return f"{x:,.2f} ms" if math.isfinite(x) else "n/a"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
