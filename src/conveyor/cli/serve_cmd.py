"""``conveyor serve``: the prediction service for one packaged model version."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from conveyor.cli.output import open_project_from, status


@click.command("serve")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "-p",
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "-w",
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes sharing the port (each loads the model; metrics are summed).",
)
@click.option(
    "-e",
    "--environment",
    default="local",
    show_default=True,
    help="Environment name the prediction log is partitioned by.",
)
@click.option(
    "--log/--no-log",
    "prediction_log",
    default=True,
    show_default=True,
    help="Log every prediction to Parquet in the artifact store.",
)
@click.option(
    "--log-interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between writes of the prediction log.",
)
@click.option(
    "--batch/--no-batch",
    default=False,
    show_default=True,
    help="Adaptive micro-batching of concurrent requests.",
)
@click.option(
    "--max-batch-rows",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows in one micro-batch.",
)
@click.option(
    "--max-wait-ms",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 1000),
    help="Longest wait for a batch to fill.",
)
@click.option(
    "--max-body-mb",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Largest request body in MiB; larger is 413.",
)
@click.option(
    "--max-rows",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows in one request; more is 413.",
)
@click.option(
    "--timeout",
    "predict_timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a prediction may take before the answer is 504.",
)
@click.option(
    "--max-in-flight",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Prediction requests at once per worker; more get 503 with Retry-After.",
)
@click.option(
    "--body-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a client may take to send a request body before the answer is 408.",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads calling the model per worker.",
)
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="On SIGTERM, seconds to let requests in flight complete.",
)
@click.pass_context
@click.option(
    "--onnx",
    "use_onnx",
    is_flag=True,
    help="Serve with the ONNX runtime, with the ONNX file that 'conveyor model "
    "validate --onnx' proved equivalent for this version.",
)
def serve(
    ctx: click.Context,
    ref: str,
    host: str,
    port: int,
    workers: int,
    environment: str,
    prediction_log: bool,
    log_interval: float,
    batch: bool,
    max_batch_rows: int,
    max_wait_ms: float,
    max_body_mb: float,
    max_rows: int,
    predict_timeout: float,
    max_in_flight: int,
    body_timeout: float,
    threads: int,
    drain_timeout: float,
    use_onnx: bool,
) -> None:
    """Serve the package of model version NAME[:VERSION] over HTTP until SIGTERM.

    Open Inference Protocol v2 under /v2, MLflow's POST /invocations (JSON or CSV), /metrics
    for Prometheus and /openapi.json. SIGTERM or Ctrl-C lets requests in flight complete,
    writes the prediction log, and exits 0.
    """
    import shutil

    with contextlib.ExitStack() as cleanup:
        with _collector_paused(freeze=workers == 1):
            from conveyor.registry.package_read import extract_package
            from conveyor.registry.versions import resolve_version
            from conveyor.serve import BatchSettings, Limits, LogSettings, ServeSettings
            from conveyor.serve.run import ServeSpec, package_model
            from conveyor.serve.run import serve as run_server

            project = open_project_from(ctx)
            mv = resolve_version(project.metadata, ref)
            settings = ServeSettings(
                limits=Limits(
                    max_body_bytes=int(max_body_mb * 1024 * 1024),
                    max_rows=max_rows,
                    predict_timeout_s=predict_timeout,
                    max_in_flight=max_in_flight,
                    body_timeout_s=body_timeout,
                ),
                batching=BatchSettings(max_batch_rows=max_batch_rows, max_wait_s=max_wait_ms / 1000)
                if batch
                else None,
                prediction_log=LogSettings(
                    url=project.artifacts_url,
                    environment=environment,
                    flush_interval_s=log_interval,
                )
                if prediction_log
                else None,
                threads=threads,
            )
            onnx_path = _proven_onnx(project, mv) if use_onnx else None
            package = extract_package(project, mv)
            package_dir = package.directory
            cleanup.callback(shutil.rmtree, package_dir, ignore_errors=True)
            project.close()
            spec = ServeSpec(
                package_dir=package_dir,
                trusted_types=tuple(project.config.trust.skops_types),
                settings=settings,
                onnx_path=onnx_path,
            )
            # One worker serves from this process: the package was verified just now.
            model = package_model(package, spec.trusted_types, onnx_path) if workers == 1 else None
        status(
            f"serving {mv.ref} on http://{host}:{port} (v2 at /v2, MLflow at /invocations, "
            f"metrics at /metrics); SIGTERM or Ctrl-C stops it"
        )
        run_server(
            model,
            spec=spec,
            host=host,
            port=port,
            workers=workers,
            drain_timeout_s=drain_timeout,
        )
    status(f"stopped serving {mv.ref}")


@contextlib.contextmanager
def _collector_paused(freeze: bool) -> Iterator[None]:
    """Start-up with the cyclic garbage collector paused.

    Start-up (the imports, the model) creates millions of objects that live as long as the
    process and next to no garbage, so the collector's passes over them during start-up are
    wasted work: about a sixth of a cold start. With ``freeze`` (the model was loaded in this
    process), what start-up left is frozen, as the service does when it starts anyway
    (``PredictionService.startup``), without a collection: that would take 0.1-0.15 s to find
    the ~1.5k unreachable objects among the ~300k that start-up made.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if freeze:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()


def _proven_onnx(project: Any, mv: Any) -> Path:
    """The verified local copy of the version's proven ONNX file."""
    from conveyor.errors import UsageError
    from conveyor.registry.versions import ONNX_TAG

    digest = mv.tags.get(ONNX_TAG)
    if not digest:
        raise UsageError(
            f"{mv.ref} has no ONNX file proven equivalent to its package",
            hint=f"run 'conveyor model validate {mv.ref} --onnx' first",
        )
    path: Path = project.artifacts.blobs.local_path(digest)
    return path
