"""The serving process of a local environment: it reconciles to the environment's desired
state in the metadata store.

Every ``POLL_S`` it reads the environment's row. When the generation changes it applies it:
a new candidate is loaded from its verified package, warmed up and checked against its
golden predictions off the request path, then takes its share of traffic (canary), a copy
of it (shadow), or none until the alias moves (replace); a new live version is swapped in
with one assignment, and the version it replaces stops only after the requests it is
answering have finished. So a swap loses no request. A candidate that fails to load or to
reproduce its golden predictions is reported failed and never serves.

What it serves, and per version the requests, errors, latencies and prediction scores seen
since the generation began, are written to the environment's ``deployments`` row every
``REPORT_S``; the controller reads them there (nothing but the prediction API listens on
the port).

Run as ``python -m conveyor.deploy.server ROOT ENVIRONMENT`` by the supervisor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.config_delivery import EnvironmentConfig
from conveyor.deploy.analysis import Reservoir, TrafficSample, compare_shadow, row_scores
from conveyor.deploy.state import Delivery, EnvState
from conveyor.engine.project import Project
from conveyor.serve.app import PredictionService, Slot
from conveyor.serve.prediction_log import Entry, PredictionLog
from conveyor.serve.problems import Refused
from conveyor.serve.settings import ServeSettings
from conveyor.serve.signature import Array
from conveyor.store import tables as t
from conveyor.store.metadata import now

log = logging.getLogger("conveyor.deploy")

POLL_S = 0.25
REPORT_S = 1.0
SAMPLE = 1000  # latencies and scores kept per version per generation
MAX_SHADOW_PENDING = 64
GOLDEN_TOLERANCE = 1e-6


@dataclass(slots=True)
class VersionStats:
    """Traffic one version answered since the generation began."""

    requests: int = 0
    errors: int = 0
    latencies: Reservoir = field(default_factory=lambda: Reservoir(SAMPLE, seed=1))
    scores: Reservoir = field(default_factory=lambda: Reservoir(SAMPLE, seed=2))
    shadow_rows: int = 0
    shadow_agreeing: float = 0.0

    def add(self, status: int, latency_s: float, outputs: Array | None) -> None:
        self.requests += 1
        if status >= 500 or status == 422:
            self.errors += 1
        self.latencies.add(latency_s * 1000)
        if outputs is not None:
            scores = row_scores(outputs)
            if scores is not None:
                for value in scores[:8]:
                    self.scores.add(float(value))

    def to_json(self) -> dict[str, Any]:
        doc = TrafficSample.collected(
            self.requests, self.errors, self.latencies, self.scores
        ).to_json()
        doc["shadow_rows"] = self.shadow_rows
        doc["shadow_agreement"] = (
            self.shadow_agreeing / self.shadow_rows if self.shadow_rows else None
        )
        return doc


@dataclass(slots=True)
class Loaded:
    version: int
    slot: Slot
    directory: Path


class EnvironmentService(PredictionService):
    """The prediction service of one environment, following its desired state."""

    def __init__(self, project: Project, env: EnvironmentConfig, settings: ServeSettings) -> None:
        super().__init__(None, settings)
        self.project = project
        self.env = env
        self.delivery = Delivery(project.metadata)
        self.live: Loaded | None = None
        self.candidate: Loaded | None = None
        self.candidate_status: str | None = None
        self.candidate_error = ""
        self.live_error = ""
        self.mode: str | None = None
        self.traffic = 0
        self.generation = -1
        self.stats = {"live": VersionStats(), "candidate": VersionStats()}
        self._random = random.Random()  # noqa: S311 (traffic splitting, not secrets)
        self._task: asyncio.Task[None] | None = None
        self._shadow_pending = 0
        self._shadow_log: PredictionLog | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def startup(self) -> None:
        await super().startup()
        self._task = asyncio.create_task(self._reconcile_loop())

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.candidate is not None:
            await self._retire(self.candidate, delay=0)
        await self._close_shadow_log()
        await super().shutdown()
        if self.live is not None:
            shutil.rmtree(self.live.directory, ignore_errors=True)

    # -- per request -------------------------------------------------------------------------

    def choose(self) -> Slot:
        candidate = self.candidate
        if (
            candidate is not None
            and self.mode == "canary"
            and self.candidate_status == "ready"
            and self._random.random() * 100 < self.traffic
        ):
            return candidate.slot
        return super().choose()

    def observe(
        self,
        slot: Slot,
        status: int,
        latency_s: float,
        columns: Sequence[Array],
        outputs: Array | None,
        request_id: str = "",
    ) -> None:
        candidate = self.candidate
        is_candidate = candidate is not None and slot is candidate.slot
        self.stats["candidate" if is_candidate else "live"].add(status, latency_s, outputs)
        if (
            not is_candidate
            and outputs is not None
            and candidate is not None
            and self.mode == "shadow"
            and self.candidate_status == "ready"
            and self._shadow_pending < MAX_SHADOW_PENDING
            and candidate.slot.model.signature == slot.model.signature
        ):
            self._shadow_pending += 1
            self._spawn(self._shadow(candidate, columns, outputs, request_id))

    async def _shadow(
        self, candidate: Loaded, columns: Sequence[Array], outputs: Array, request_id: str
    ) -> None:
        """The candidate answers a copy of a request; its answer is compared and logged (under
        ``env=ENVIRONMENT.shadow``), never sent."""
        stats = self.stats["candidate"]
        received = time.time()
        start = time.perf_counter()
        try:
            got = await candidate.slot.predictor.predict(columns, len(columns[0]))
        except Refused as refused:
            stats.add(refused.status, time.perf_counter() - start, None)
            return
        except Exception:  # noqa: BLE001 - a shadow's fault is counted, never raised
            stats.add(500, time.perf_counter() - start, None)
            return
        finally:
            self._shadow_pending -= 1
        latency = time.perf_counter() - start
        stats.add(200, latency, got)
        if self._shadow_log is not None:
            self._shadow_log.record(
                Entry(
                    request_id=request_id or "shadow",
                    protocol="shadow",
                    received=received,
                    latency_s=latency,
                    columns=columns,
                    outputs=got,
                )
            )
        tolerance = self.env.shadow.tolerance
        agreement, _ = compare_shadow(np.asarray(outputs), np.asarray(got), tolerance)
        stats.shadow_rows += len(got)
        stats.shadow_agreeing += agreement * len(got)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reconciling -------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        last_report = 0.0
        while True:
            try:
                state = await asyncio.to_thread(self.delivery.env_state, self.env.name)
                changed = state.generation != self.generation
                if changed:
                    await self._apply(state)
                if changed or time.monotonic() - last_report >= REPORT_S:
                    await asyncio.to_thread(self._report)
                    await asyncio.to_thread(self._revert_abandoned, state)
                    last_report = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciling environment %s failed; retrying", self.env.name)
            await asyncio.sleep(POLL_S)

    async def _apply(self, state: EnvState) -> None:
        if state.live_version is not None and (
            self.live is None or self.live.version != state.live_version
        ):
            await self._go_live(state)
        if state.candidate_version is None:
            if self.candidate is not None:
                self._spawn(self._retire(self.candidate))
                self.candidate = None
            self.candidate_status, self.candidate_error = None, ""
        elif self.candidate is None or self.candidate.version != state.candidate_version:
            if self.candidate is not None:
                self._spawn(self._retire(self.candidate))
                self.candidate = None
            self.candidate_status, self.candidate_error = "loading", ""
            await asyncio.to_thread(self._report)
            assert state.model is not None
            try:
                self.candidate = await self._load(state.model, state.candidate_version)
                self.candidate_status = "ready"
                log.info("candidate %s:%s ready", state.model, state.candidate_version)
            except Exception as exc:  # noqa: BLE001 - reported as the candidate's failure
                self.candidate_status, self.candidate_error = "failed", _reason(exc)
                log.error("candidate %s:%s failed: %s", state.model, state.candidate_version, exc)
        self.mode, self.traffic = state.mode, state.traffic
        await self._follow_shadow_log()
        self.generation = state.generation
        self.stats = {"live": VersionStats(), "candidate": VersionStats()}

    async def _follow_shadow_log(self) -> None:
        """A log of the shadow's answers while a shadow candidate is ready, none otherwise."""
        candidate = self.candidate
        want = (
            candidate is not None
            and self.mode == "shadow"
            and self.candidate_status == "ready"
            and self.settings.prediction_log is not None
        )
        current = self._shadow_log
        if current is not None and (
            not want or candidate is None or current.version != str(candidate.version)
        ):
            await self._close_shadow_log()
        if want and self._shadow_log is None:
            assert candidate is not None and self.settings.prediction_log is not None
            settings = dataclasses.replace(
                self.settings.prediction_log, environment=f"{self.env.name}.shadow"
            )
            model = candidate.slot.model
            self._shadow_log = PredictionLog(
                settings, model=model.name, version=model.version, signature=model.signature
            )
            self._shadow_log.start()

    async def _close_shadow_log(self) -> None:
        if self._shadow_log is not None:
            log_, self._shadow_log = self._shadow_log, None
            await log_.close()

    async def _go_live(self, state: EnvState) -> None:
        assert state.model is not None and state.live_version is not None
        candidate = self.candidate
        if (
            candidate is not None
            and candidate.version == state.live_version
            and self.candidate_status == "ready"
        ):
            new, self.candidate = candidate, None  # loaded and checked already
            self.candidate_status = None
        else:
            try:
                new = await self._load(state.model, state.live_version)
            except Exception as exc:  # noqa: BLE001 - reported; the old version keeps serving
                self.live_error = _reason(exc)
                log.error("live version %s:%s failed: %s", state.model, state.live_version, exc)
                return
        old_live = self.live
        await self.swap(new.slot)  # from here on every new request goes to the new version
        self.live, self.live_error = new, ""
        log.info("now serving %s:%s", state.model, new.version)
        if old_live is not None:
            self._spawn(self._retire(old_live))

    async def _load(self, model: str, version: int) -> Loaded:
        """Load a version from its verified package, check its golden predictions, start it."""
        from conveyor.registry.infra import compare_predictions
        from conveyor.registry.package_read import extract_package
        from conveyor.registry.versions import get_version
        from conveyor.serve.model import ServedModel, example_columns

        def load() -> tuple[Any, Path]:
            mv = get_version(self.project.metadata, model, version)
            package = extract_package(self.project, mv)  # verified: every file's digest
            directory = package.directory
            try:
                served = ServedModel.from_package(
                    package, tuple(self.project.config.trust.skops_types)
                )
                got = served.predict(example_columns(served.signature, package.golden_inputs()))
                check = compare_predictions(
                    package.golden_predictions(),
                    {"predictions": np.asarray(got).tolist()},
                    GOLDEN_TOLERANCE,
                )
                if not check.passed:
                    raise RuntimeError(f"golden predictions: {check.message}")
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            return served, directory

        served, directory = await asyncio.to_thread(load)
        slot = self.new_slot(served)
        await slot.start()
        return Loaded(version, slot, directory)

    async def _retire(self, loaded: Loaded, delay: float | None = None) -> None:
        """Stop a version once the requests it is answering have had time to finish."""
        wait = self.settings.limits.predict_timeout_s + 0.5 if delay is None else delay
        await asyncio.sleep(wait)
        await loaded.slot.stop()
        shutil.rmtree(loaded.directory, ignore_errors=True)

    def _revert_abandoned(self, state: EnvState) -> None:
        """A rollout whose controller died must not keep its share of traffic until someone
        runs a command: revert it here (the same revert any command would do)."""
        from conveyor.deploy.identity import audit
        from conveyor.engine.lease import pid_alive
        from conveyor.errors import ConveyorError

        if state.candidate_promotion is None:
            return
        lost = self.delivery.abandoned(self.env.name, pid_alive)
        if lost is None or lost.id != state.candidate_promotion:
            return
        try:
            self.delivery.close(
                lost,
                status="failed",
                event="failed",
                actor="conveyor-server",
                message=f"reverted by the serving process of {self.env.name}: the controller "
                f"driving it ({lost.lease_owner}) stopped while it was "
                f"{lost.status.replace('_', ' ')}; the live version serves all traffic",
            )
        except ConveyorError:
            return  # a command reverted or ended it first
        with self.project.metadata.writer.begin() as conn:
            audit(
                conn,
                "conveyor-server",
                "recover",
                f"#{lost.id} {lost.ref} -> {lost.environment}",
                "failed",
            )
        log.warning("reverted promotion #%d of %s: its controller is gone", lost.id, lost.ref)

    def observed(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "generation": self.generation,
            "ready": self.ready,
            "live": {
                "version": self.live.version if self.live else None,
                "error": self.live_error,
            },
            "candidate": {
                "version": self.candidate.version if self.candidate else None,
                "status": self.candidate_status,
                "error": self.candidate_error,
            },
            "mode": self.mode,
            "traffic": self.traffic,
            "stats": {role: stats.to_json() for role, stats in self.stats.items()},
        }

    def _report(self) -> None:
        doc = self.observed()
        with self.project.metadata.writer.begin() as conn:
            conn.execute(
                t.deployments.update()
                .where(t.deployments.c.environment == self.env.name)
                .values(observed=doc, heartbeat_at=now(), server_pid=os.getpid())
            )


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = getattr(exc, "hint", None)
    return f"{text} ({hint})" if hint else text


def main(argv: Sequence[str] | None = None) -> None:
    from conveyor.deploy.environments import environment
    from conveyor.engine.project import open_project
    from conveyor.serve.limits import Limits
    from conveyor.serve.prediction_log import LogSettings
    from conveyor.serve.run import run_app

    args = list(sys.argv[1:] if argv is None else argv)
    root, name = Path(args[0]), args[1]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    project = open_project(root)
    env = environment(project.config, name)
    settings = ServeSettings(
        limits=Limits(),
        prediction_log=LogSettings(
            url=project.artifacts_url, environment=env.name, flush_interval_s=2.0
        ),
    )
    service = EnvironmentService(project, env, settings)
    assert env.target.port is not None
    run_app(service, host=env.target.host, port=env.target.port, drain_timeout_s=30.0)


if __name__ == "__main__":
    main()
