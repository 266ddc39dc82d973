"""What a load test is pointed at: a running service's URL, or a model version whose package
the test serves itself for its duration."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import UsageError
from conveyor.loadtest.client import Endpoint
from conveyor.loadtest.payloads import (
    Payload,
    Rows,
    build_payload,
    rows_from_file,
    rows_from_package,
)

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_url(target: str) -> bool:
    return bool(URL.match(target))


@contextlib.contextmanager
def open_target(
    target: str,
    *,
    project: Callable[[], Project],
    inputs: Path | None = None,
    package_ref: str | None = None,
    protocol: str = "mlflow",
    rows_per_request: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Iterator[tuple[Endpoint, Payload]]:
    """The endpoint to load and the encoded requests; for ``NAME:VERSION``, the service of
    that version's package runs on a free local port until the block ends.

    ``project`` opens the project, and is called only when a model version is named.
    """
    say = progress or (lambda _: None)
    if is_url(target):
        endpoint = Endpoint.parse(target)
        if inputs is not None:
            rows = rows_from_file(inputs)
        elif package_ref is not None:
            rows = _rows_of_version(project(), package_ref)
        else:
            raise UsageError(
                f"what should the requests to {target} hold?",
                hint="pass --package NAME:VERSION (its golden and evaluation rows) or "
                "--inputs FILE (dataframe_split JSON, CSV or Parquet)",
            )
        yield endpoint, build_payload(endpoint, rows, rows_per_request)
        return
    if package_ref is not None:
        raise UsageError(
            "--package is for a URL target; a NAME:VERSION target sends its own rows",
            hint=f"drop --package, or load a running service: conveyor loadtest URL --package "
            f"{package_ref}",
        )
    with _served_version(
        project(), target, inputs=inputs, protocol=protocol, rpr=rows_per_request, say=say
    ) as opened:
        yield opened


@contextlib.contextmanager
def _served_version(
    project: Project,
    ref: str,
    *,
    inputs: Path | None,
    protocol: str,
    rpr: int,
    say: Callable[[str], None],
) -> Iterator[tuple[Endpoint, Payload]]:
    from conveyor.loadtest.service import serve_package
    from conveyor.registry.package import open_package
    from conveyor.registry.versions import resolve_version

    mv = resolve_version(project.metadata, ref)
    directory = open_package(project, mv)
    try:
        rows = rows_from_file(inputs) if inputs else rows_from_package(directory, project, mv)
        with serve_package(project, directory, progress=say) as (host, port):
            path = "/invocations" if protocol == "mlflow" else f"/v2/models/{mv.name}/infer"
            endpoint = Endpoint(host=host, port=port, path=path)
            yield endpoint, build_payload(endpoint, rows, rpr)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _rows_of_version(project: Project, ref: str) -> Rows:
    from conveyor.registry.package import open_package
    from conveyor.registry.versions import resolve_version

    mv: ModelVersion = resolve_version(project.metadata, ref)
    directory = open_package(project, mv)
    try:
        return rows_from_package(directory, project, mv)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
