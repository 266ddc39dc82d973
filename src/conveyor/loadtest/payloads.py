"""Request bodies for a load test, drawn from a model's own rows.

Rows come from a package's golden inputs (and, when the version's run still has them, the
evaluation rows they were taken from), or from a file. Each request carries
``rows_per_request`` consecutive rows, and requests cycle through the rows, so a long test
sends every row in turn rather than one cached answer. Bodies are encoded once, up front.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import UsageError
from conveyor.loadtest.client import Endpoint, encode_request

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

MAX_ROWS = 10_000  # enough variety for any test; more only costs memory and start-up
MAX_BODIES = 10_000
V2_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
EVALUATION_STEPS = ("evaluate_model", "validate_model")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rows:
    """Model input rows in pandas' split orient, and where they came from."""

    columns: list[str]
    data: list[list[Any]]
    sources: tuple[str, ...]
    types: dict[str, str] = field(default_factory=dict)  # column -> MLflow type, when known

    def __post_init__(self) -> None:
        if not self.data:
            raise UsageError(f"no input rows in {', '.join(self.sources) or 'the payload'}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """The pre-encoded requests of a test and what they hold."""

    protocol: str  # mlflow (POST /invocations, dataframe_split) | v2 (Open Inference Protocol)
    requests: list[bytes]
    rows: int
    rows_per_request: int
    sources: tuple[str, ...]

    @property
    def mean_bytes(self) -> float:
        return sum(len(r) for r in self.requests) / len(self.requests)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "rows": self.rows,
            "rows_per_request": self.rows_per_request,
            "distinct_requests": len(self.requests),
            "mean_request_bytes": round(self.mean_bytes, 1),
            "sources": list(self.sources),
        }


def protocol_of(endpoint: Endpoint) -> str:
    """``v2`` for ``/v2/models/NAME[/versions/V]/infer``, else ``mlflow``."""
    return "v2" if V2_PATH.match(endpoint.path.split("?", 1)[0]) else "mlflow"


def build_payload(endpoint: Endpoint, rows: Rows, rows_per_request: int = 1) -> Payload:
    """Encode the requests: request k carries rows ``k*r .. k*r+r-1`` (modulo the rows)."""
    if rows_per_request < 1:
        raise UsageError(f"--rows-per-request {rows_per_request} is not positive")
    protocol = protocol_of(endpoint)
    n = len(rows.data)
    distinct = min(n // math.gcd(n, rows_per_request), MAX_BODIES)
    requests = []
    for k in range(distinct):
        first = k * rows_per_request
        chunk = [rows.data[(first + j) % n] for j in range(rows_per_request)]
        body = (
            v2_body(rows.columns, chunk, rows.types)
            if protocol == "v2"
            else mlflow_body(rows.columns, chunk)
        )
        requests.append(encode_request(endpoint, body))
    return Payload(
        protocol=protocol,
        requests=requests,
        rows=n,
        rows_per_request=rows_per_request,
        sources=rows.sources,
    )


def mlflow_body(columns: Sequence[str], data: Sequence[Sequence[Any]]) -> bytes:
    """MLflow's ``/invocations`` body in the dataframe_split form."""
    doc = {"dataframe_split": {"columns": list(columns), "data": [list(r) for r in data]}}
    return _json(doc)


def v2_body(
    columns: Sequence[str], data: Sequence[Sequence[Any]], types: dict[str, str] | None = None
) -> bytes:
    """An Open Inference Protocol v2 request: one input tensor per column, typed by the
    model's signature when it is known, else by the values."""
    from conveyor.serve.signature import V2_DATATYPES

    inputs = []
    for i, name in enumerate(columns):
        values = [row[i] for row in data]
        datatype = V2_DATATYPES.get((types or {}).get(name, "")) or datatype_of(values)
        inputs.append({"name": name, "shape": [len(values)], "datatype": datatype, "data": values})
    return _json({"inputs": inputs})


def _json(doc: Any) -> bytes:
    # A missing value is null: NaN is not JSON, and the service refuses it.
    try:
        return json.dumps(_nan_to_null(doc), separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise UsageError(
            "an input row holds an infinite number, which JSON cannot carry",
            hint="drop or replace the row in the inputs",
        ) from None


def _nan_to_null(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_null(v) for v in value]
    return value


def datatype_of(values: Sequence[Any]) -> str:
    """The v2 datatype that holds ``values``: BOOL, INT64, FP64, else BYTES."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


# -- where rows come from ----------------------------------------------------------------------


def rows_from_split(doc: Any, source: str) -> Rows:
    """Rows of ``{"dataframe_split": {"columns", "data"}}`` or of a bare ``{"columns", "data"}``."""
    split = doc.get("dataframe_split", doc) if isinstance(doc, dict) else None
    columns = split.get("columns") if isinstance(split, dict) else None
    data = split.get("data") if isinstance(split, dict) else None
    if not (
        isinstance(columns, list)
        and isinstance(data, list)
        and all(isinstance(r, list) and len(r) == len(columns) for r in data)
    ):
        raise UsageError(
            f"{source} is not in the dataframe_split form",
            hint='write {"dataframe_split": {"columns": [...], "data": [[...], ...]}}, one '
            "inner list per row with one value per column",
        )
    return Rows(columns=[str(c) for c in columns], data=data[:MAX_ROWS], sources=(source,))


def rows_from_file(path: Path) -> Rows:
    """Rows of a JSON file (dataframe_split), a CSV file or a Parquet file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return rows_from_split(json.loads(path.read_text(encoding="utf-8")), str(path))
        if suffix in (".csv", ".parquet", ".pq"):
            import pandas as pd

            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
            return _rows_of_frame(frame.head(MAX_ROWS), str(path))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    raise UsageError(
        f"{path}: unknown input format '{suffix}'",
        hint="give a .json file (dataframe_split), a .csv or a .parquet file",
    )


def rows_from_package(
    directory: Path, project: Project | None = None, mv: ModelVersion | None = None
) -> Rows:
    """The package's golden inputs, then the evaluation rows of the version's run when the
    project still has them (the golden rows are their first 200)."""
    from conveyor.registry.package import GOLDEN_INPUTS, read_package

    package = read_package(directory)
    golden = rows_from_split(
        json.loads((package.directory / GOLDEN_INPUTS).read_text(encoding="utf-8")),
        f"{package.ref} {GOLDEN_INPUTS}",
    )
    golden = replace(golden, types=_signature_types(package.mlmodel))
    if project is None or mv is None:
        return golden
    extra = _evaluation_rows(project, mv, golden.columns)
    if extra is None:
        return golden
    seen = {json.dumps(r) for r in golden.data}
    more = [r for r in extra.data if json.dumps(r) not in seen]
    return replace(
        golden, data=(golden.data + more)[:MAX_ROWS], sources=(*golden.sources, *extra.sources)
    )


def _signature_types(mlmodel: dict[str, Any]) -> dict[str, str]:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    try:
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs or []
        return {str(s["name"]): str(s["type"]) for s in specs}
    except (ValueError, KeyError, TypeError):
        return {}


def _evaluation_rows(project: Project, mv: ModelVersion, columns: list[str]) -> Rows | None:
    import pandas as pd

    from conveyor.errors import NotFoundError
    from conveyor.store import queries

    for step in queries.step_runs(project.metadata, mv.run_id):
        data = step.inputs.get("data")
        if step.name not in EVALUATION_STEPS or step.inputs.get("model") != mv.digest or not data:
            continue
        try:
            frame = project.artifacts.load(queries.find_artifact(project.metadata, data))
        except (NotFoundError, OSError):
            return None  # garbage-collected or unreadable: the golden rows will do
        if isinstance(frame, pd.DataFrame) and set(columns) <= set(map(str, frame.columns)):
            frame.columns = [str(c) for c in frame.columns]
            return _rows_of_frame(
                frame[columns].head(MAX_ROWS), f"evaluation rows of run {mv.run_id}"
            )
    return None


def _rows_of_frame(frame: Any, source: str) -> Rows:
    from conveyor.registry.package import jsonable_rows

    doc = jsonable_rows(frame)
    return Rows(columns=doc["columns"], data=doc["data"], sources=(source,))
