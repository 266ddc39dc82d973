"""Run the prediction service under uvicorn, and stop it by draining.

On SIGTERM (or SIGINT) uvicorn stops accepting connections, lets the requests in flight
complete (up to ``drain_timeout_s``), then runs the app's shutdown, which writes the queued
prediction log; the process then exits 0. With ``workers > 1`` uvicorn starts that many
processes on one socket; each loads the package itself (from the spec in an environment
variable), and the metrics of all of them are summed through prometheus_client's
multiprocess directory (see :mod:`conveyor.serve.metrics`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import UsageError
from conveyor.serve.app import PredictionService
from conveyor.serve.http import HttpProtocol
from conveyor.serve.metrics import MULTIPROC_ENV
from conveyor.serve.model import ServedModel
from conveyor.serve.settings import ServeSettings

if TYPE_CHECKING:
    from conveyor.registry.package_read import Package

SPEC_ENV = "CONVEYOR_SERVE_SPEC"
FACTORY = "conveyor.serve.run:app_from_environment"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeSpec:
    """What a worker process needs to build the app: the package directory (already extracted
    and verified), the types the project trusts for skops, and the settings."""

    package_dir: Path
    trusted_types: tuple[str, ...] = ()
    settings: ServeSettings = field(default_factory=ServeSettings)
    onnx_path: Path | None = None  # serve this ONNX file (proven equivalent) instead

    def to_json(self) -> str:
        return json.dumps(
            {
                "package_dir": str(self.package_dir),
                "trusted_types": list(self.trusted_types),
                "settings": self.settings.to_json(),
                "onnx_path": str(self.onnx_path) if self.onnx_path else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        doc = json.loads(text)
        return cls(
            package_dir=Path(doc["package_dir"]),
            trusted_types=tuple(doc.get("trusted_types") or ()),
            settings=ServeSettings.from_json(doc.get("settings") or {}),
            onnx_path=Path(doc["onnx_path"]) if doc.get("onnx_path") else None,
        )


def load_package_model(
    package_dir: Path, trusted_types: Sequence[str] = (), onnx_path: Path | None = None
) -> ServedModel:
    from conveyor.registry.package import read_package

    return package_model(read_package(package_dir), trusted_types, onnx_path)


def package_model(
    package: Package, trusted_types: Sequence[str] = (), onnx_path: Path | None = None
) -> ServedModel:
    """The model of a package verified already (by ``read_package`` or ``extract_package``)."""
    if onnx_path is None:
        return ServedModel.from_package(package, trusted_types)
    return ServedModel.from_onnx(package, onnx_path.read_bytes())


def app_from_environment() -> PredictionService:
    """uvicorn's factory in each worker process."""
    text = os.environ.get(SPEC_ENV)
    if not text:
        raise UsageError(f"{SPEC_ENV} is not set", hint="start workers with 'conveyor serve'")
    spec = ServeSpec.from_json(text)
    return PredictionService(
        load_package_model(spec.package_dir, spec.trusted_types, spec.onnx_path), spec.settings
    )


def uvicorn_options(host: str, port: int, drain_timeout_s: float) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "lifespan": "on",
        "access_log": False,  # per-request log lines are I/O on the hot path; metrics count them
        "server_header": False,
        "http": HttpProtocol,  # httptools, one send per response (see conveyor.serve.http)
        "ws": "none",  # no WebSocket routes: skip importing a WebSocket implementation
        "proxy_headers": False,  # the service never reads the client's address
        "timeout_graceful_shutdown": drain_timeout_s,
        "log_level": "info",
    }


def serve(
    model: ServedModel | None = None,
    *,
    spec: ServeSpec | None = None,
    settings: ServeSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    drain_timeout_s: float = 30.0,
) -> None:
    """Serve ``model`` (one process), or the package of ``spec`` (``workers`` processes),
    until SIGTERM or SIGINT; return after the in-flight requests have drained. ``settings``
    defaults to the spec's."""
    import uvicorn

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    check_port(host, port)
    options = uvicorn_options(host, port, drain_timeout_s)
    if workers == 1:
        if model is None:
            if spec is None:
                raise UsageError("serve needs a model or a package")
            model = load_package_model(spec.package_dir, spec.trusted_types, spec.onnx_path)
        if settings is None:
            settings = spec.settings if spec is not None else ServeSettings()
        app = PredictionService(model, settings)
        server = uvicorn.Server(uvicorn.Config(app, **options))
        with _drain_exits_cleanly():
            server.run()
        return
    if spec is None:
        raise UsageError("--workers above 1 needs a package", hint="serve NAME:VERSION")
    if settings is not None:
        spec = ServeSpec(
            package_dir=spec.package_dir,
            trusted_types=spec.trusted_types,
            settings=settings,
            onnx_path=spec.onnx_path,
        )
    metrics_dir = tempfile.mkdtemp(prefix="conveyor-metrics-")
    os.environ[SPEC_ENV] = spec.to_json()
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(FACTORY, factory=True, workers=workers, **options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(SPEC_ENV, None)
        os.environ.pop(MULTIPROC_ENV, None)


def run_app(app: Any, *, host: str, port: int, drain_timeout_s: float = 30.0) -> None:
    """Serve an app built by the caller (one process) until SIGTERM; return once drained."""
    import uvicorn

    check_port(host, port)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(host, port, drain_timeout_s)))
    with _drain_exits_cleanly():
        server.run()


def check_port(host: str, port: int) -> None:
    """A clear error for a port in use, before the model is started (uvicorn would exit 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                hint="choose another port with --port, or stop what is using this one",
            ) from None


@contextlib.contextmanager
def _drain_exits_cleanly() -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it once it has drained, which would end the
    process by that signal (exit status 143) after a clean drain. It re-raises into the
    handler that was installed before it ran: this one does nothing, so the process exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield  # uvicorn handles no signals outside the main thread either
        return
    saved = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: Any) -> None:
    """A signal re-raised after the drain has finished: nothing is left to do."""
