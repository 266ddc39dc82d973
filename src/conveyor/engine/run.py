"""``conveyor run``: plan the run, reuse verified cached results, execute the rest, record all.

A step is reused only when a successful step run with the same cache key exists *and* every
one of its output blobs verifies; a blob that does not is quarantined and the step recomputed.
A failing step fails the run; steps downstream of it are skipped, independent ones continue,
and the next run reuses everything that succeeded.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from conveyor.core.fingerprint import CacheKeyParts, canonical_json, explain_change
from conveyor.core.pipeline import Invocation
from conveyor.core.records import ArtifactInfo, RunStatus, StepStatus
from conveyor.engine import lease
from conveyor.engine.closure import ClosureHasher
from conveyor.engine.execute import StepTask, TaskResult, run_task
from conveyor.engine.gitinfo import git_state
from conveyor.engine.keys import step_key_parts
from conveyor.engine.plan import Plan, plan_run
from conveyor.engine.project import Project
from conveyor.engine.workspace import restore_outs
from conveyor.errors import EXIT_CANCELLED, ConveyorError, DefinitionError, LeaseLostError
from conveyor.store.metadata import StepRecord


class Cancelled(ConveyorError):
    exit_code = EXIT_CANCELLED


class Reporter(Protocol):
    """Receives progress; the CLI prints it, tests may collect it."""

    def run_started(self, run_id: str, pipeline: str, steps: int) -> None: ...
    def step_finished(self, outcome: StepOutcome) -> None: ...
    def warning(self, message: str) -> None: ...


class NullReporter:
    def run_started(self, run_id: str, pipeline: str, steps: int) -> None:
        pass

    def step_finished(self, outcome: StepOutcome) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    pipeline: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool = False
    explain: bool = False
    workers: int | None = None
    reproduces: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    name: str
    status: StepStatus
    duration_s: float = 0.0
    outputs: dict[str, ArtifactInfo] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    run_id: str
    pipeline: str
    status: RunStatus
    steps: tuple[StepOutcome, ...]

    def step(self, name: str) -> StepOutcome:
        return next(s for s in self.steps if s.name == name)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"


class RunExecution:
    """One run of a planned pipeline."""

    def __init__(
        self, project: Project, plan: Plan, options: RunOptions, reporter: Reporter
    ) -> None:
        self.project, self.plan, self.options, self.reporter = project, plan, options, reporter
        self.store = project.metadata
        self.artifacts = project.artifacts
        self.hasher = ClosureHasher(project.root)
        self.run_id = new_run_id()
        self.owner = lease.owner_id()
        self.outputs: dict[str, dict[str, ArtifactInfo]] = {}
        self.status: dict[str, StepStatus] = {}
        self.outcomes: dict[str, StepOutcome] = {}
        self.positions = {inv.name: i for i, inv in enumerate(plan.graph.invocations)}
        self.workers = max(1, options.workers or project.config.workers)
        self.pending: list[StepRecord] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.project.config
        lease.reap(self.store, ttl_s=cfg.heartbeat_seconds * 6)
        self.artifacts.blobs.clean_staging(alive=lease.pid_alive)
        git = git_state(self.project.root)
        diff_digest = self.artifacts.blobs.put_bytes(git.diff)[0] if git.dirty else None
        self.store.create_run(
            run_id=self.run_id,
            project=cfg.name,
            pipeline=self.plan.graph.name,
            owner=self.owner,
            git={
                "commit": git.commit,
                "dirty": git.dirty,
                "diff_digest": diff_digest,
                "subdir": git.subdir,
            },
            params=self.plan.params,
            step_params=self.plan.step_params,
            environment={
                "python": platform.python_version(),
                "platform": platform.platform(),
                "executable": sys.executable,
                "workers": self.workers,
            },
            reproduces=self.options.reproduces,
            tags={"cli_params": canonical_json(dict(self.options.params))}
            if self.options.params
            else None,
        )
        self.reporter.run_started(
            self.run_id, self.plan.graph.name, len(self.plan.graph.invocations)
        )

    def execute(self) -> RunOutcome:
        self.start()
        try:
            with lease.Heartbeat(
                self.store, self.run_id, self.owner, self.project.config.heartbeat_seconds
            ):
                if self.workers > 1:
                    self._schedule_parallel()
                else:
                    for inv in self.plan.graph.invocations:
                        self._visit(inv, None)
                self._flush()
        except KeyboardInterrupt:
            self._flush_quietly()
            self.store.finish_run(
                self.run_id, RunStatus.CANCELLED, "cancelled by the user", owner=self.owner
            )
            raise Cancelled(
                f"run {self.run_id} cancelled",
                hint="completed steps are cached; run again to resume",
            ) from None
        except BaseException as exc:
            if not isinstance(exc, LeaseLostError):
                self._flush_quietly()
                self.store.finish_run(
                    self.run_id, RunStatus.FAILED, f"{type(exc).__name__}: {exc}", owner=self.owner
                )
            raise
        failed = [n for n, s in self.status.items() if s == StepStatus.FAILED]
        final = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        error = f"step {', '.join(failed)} failed" if failed else None
        if not self.store.finish_run(self.run_id, final, error, owner=self.owner):
            raise LeaseLostError(
                f"run {self.run_id} lost its lease before it finished; its results are discarded",
                hint="check that the machine is not overloaded or suspended, or raise "
                "heartbeat_seconds in conveyor.yaml",
            )

        order = [inv.name for inv in self.plan.graph.invocations]
        return RunOutcome(
            run_id=self.run_id,
            pipeline=self.plan.graph.name,
            status=final,
            steps=tuple(self.outcomes[n] for n in order if n in self.outcomes),
        )

    # -- scheduling ------------------------------------------------------------------------
    def _schedule_parallel(self) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pending = list(self.plan.graph.invocations)
        running: dict[Future[TaskResult], tuple[Invocation, int, CacheKeyParts, tuple[str, ...]]]
        running = {}
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            try:
                while pending or running:
                    progressed = False
                    for inv in list(pending):
                        ups = self.plan.graph.upstream.get(inv.name, ())
                        if all(u in self.status for u in ups):
                            pending.remove(inv)
                            progressed = True
                            self._visit(inv, (pool, running))
                    if running:
                        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                        for fut in done:
                            inv, step_id, parts, reasons = running.pop(fut)
                            self._finish(inv, step_id, parts, reasons, fut.result())
                    elif not progressed and pending:
                        raise DefinitionError("the pipeline graph could not be scheduled")
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def _visit(self, inv: Invocation, parallel: Any) -> None:
        ups = self.plan.graph.upstream.get(inv.name, ())
        blocked = [
            u for u in ups if self.status.get(u) not in (StepStatus.SUCCEEDED, StepStatus.CACHED)
        ]
        position = self.positions[inv.name]
        if blocked:
            self.pending.append(
                StepRecord(
                    name=inv.name,
                    position=position,
                    status=StepStatus.SKIPPED,
                    error=f"upstream step {blocked[0]} did not succeed",
                )
            )
            self._outcome(
                StepOutcome(
                    name=inv.name,
                    status=StepStatus.SKIPPED,
                    error=f"upstream step {blocked[0]} did not succeed",
                )
            )
            return
        inputs = {arg: self.outputs[ref.step][ref.output] for arg, ref in inv.inputs.items()}
        parts = self._key_parts(inv, inputs)
        key = parts.key()
        use_cache = inv.step.cache and not self.options.no_cache
        if use_cache and self._try_cache(inv, position, key, parts, inputs):
            return
        reasons: tuple[str, ...] = ()
        if self.options.explain:
            reasons = self._reasons(inv, parts, use_cache)
        self._flush()
        step_id = self.store.start_step(
            owner=self.owner,
            run_id=self.run_id,
            name=inv.name,
            position=position,
            cache_key=key,
            key_parts=parts.to_json(),
            inputs=inputs,
        )
        task = self._task(inv, inputs)
        if parallel is None:
            func = inv.step.func
            result = run_task(task, func, self.artifacts)
            self._finish(inv, step_id, parts, reasons, result)
        else:
            pool, running = parallel
            running[pool.submit(run_task, task)] = (inv, step_id, parts, reasons)

    def _reasons(self, inv: Invocation, parts: CacheKeyParts, use_cache: bool) -> tuple[str, ...]:
        if not inv.step.cache:
            return ("caching is off for this step",)
        if not use_cache:
            return ("--no-cache",)
        old = self.store.previous_key_parts(self.plan.graph.name, inv.name, self.run_id)
        changed = explain_change(CacheKeyParts.from_json(old) if old else None, parts)
        return tuple(changed) or ("same key as before, but its cached result is gone",)

    def _try_cache(
        self,
        inv: Invocation,
        position: int,
        key: str,
        parts: CacheKeyParts,
        inputs: dict[str, ArtifactInfo],
    ) -> bool:
        hit = self.store.find_cached(key)
        if hit is None:
            return False
        outputs = hit.outputs
        for name, info in outputs.items():
            if not self.artifacts.blobs.verify(info.digest):
                self.reporter.warning(
                    f"step {inv.name}: cached output '{name}' ({info.digest[:12]}) is missing or "
                    "corrupt; it was quarantined and the step runs again"
                )
                return False
        if inv.step.is_cmd:
            self._restore_outs(outputs)
        self.pending.append(
            StepRecord(
                name=inv.name,
                position=position,
                status=StepStatus.CACHED,
                cache_key=key,
                key_parts=parts.to_json(),
                inputs=inputs,
                outputs=outputs,
                cached_from=hit.step_run_id,
                metrics=hit.metrics,
                checks=hit.checks,
            )
        )
        self.outputs[inv.name] = outputs
        self._outcome(StepOutcome(name=inv.name, status=StepStatus.CACHED, outputs=outputs))
        return True

    def _finish(
        self,
        inv: Invocation,
        step_id: int,
        parts: CacheKeyParts,
        reasons: tuple[str, ...],
        result: TaskResult,
    ) -> None:
        failed = result.error is not None
        status = StepStatus.FAILED if failed else StepStatus.SUCCEEDED
        self.store.finish_step(
            step_id,
            run_id=self.run_id,
            owner=self.owner,
            status=status,
            duration_s=result.duration_s,
            outputs=result.outputs,  # empty for a failed step: it leaves no artifact
            error=result.error,
            logs_digest=self.artifacts.save_text(result.logs) if result.logs else None,
            step_name=inv.name,
            metrics=None if failed else result.metrics,
            checks=result.checks,
        )
        if not failed:
            self.outputs[inv.name] = result.outputs
        self._outcome(
            StepOutcome(
                name=inv.name,
                status=status,
                duration_s=result.duration_s,
                outputs=result.outputs,
                reasons=reasons,
                error=result.error,
            )
        )

    def _flush(self) -> None:
        """Write the cached and skipped steps recorded since the last write, in one go."""
        if self.pending:
            records, self.pending = self.pending, []
            self.store.record_steps(run_id=self.run_id, owner=self.owner, records=records)

    def _flush_quietly(self) -> None:
        # On the way out of a failed run: keep what can be kept, never mask the first error.
        try:
            self._flush()
        except ConveyorError:
            self.pending = []

    def _outcome(self, outcome: StepOutcome) -> None:
        self.status[outcome.name] = outcome.status
        self.outcomes[outcome.name] = outcome
        self.reporter.step_finished(outcome)

    # -- keys and tasks --------------------------------------------------------------------
    def _key_parts(self, inv: Invocation, inputs: Mapping[str, ArtifactInfo]) -> CacheKeyParts:
        params = self.plan.step_params.get(inv.name, {})
        return step_key_parts(self.hasher, self.project.root, inv, inputs, params)

    def _task(self, inv: Invocation, inputs: dict[str, ArtifactInfo]) -> StepTask:
        sd = inv.step
        cfg = self.project.config
        return StepTask(
            run_id=self.run_id,
            name=inv.name,
            module=sd.func.__module__ if sd.func else None,
            qualname=sd.func.__qualname__ if sd.func else None,
            cmd=sd.cmd,
            params=self.plan.step_params.get(inv.name, {}),
            inputs=inputs,
            outputs=tuple(o.name for o in sd.outputs),
            output_kind=sd.output_kind,
            root=str(self.project.root),
            artifacts_url=self.project.artifacts_url,
            cache_dir=str(self.project.state_dir / "cache"),
            trust_pickle=cfg.trust.pickle,
            skops_types=tuple(cfg.trust.skops_types),
            contracts=sd.contracts,
            refs=self.plan.refs.get(inv.name, {}),
        )

    def _restore_outs(self, outputs: Mapping[str, ArtifactInfo]) -> None:
        restore_outs(self.project.root, self.artifacts, outputs, self.project.state_dir / "tmp")


def run_pipeline(
    project: Project, options: RunOptions | None = None, reporter: Reporter | None = None
) -> RunOutcome:
    """Plan and execute a pipeline of ``project``; returns what happened to every step."""
    options = options or RunOptions()
    plan = plan_run(project, options)
    return RunExecution(project, plan, options, reporter or NullReporter()).execute()


def outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "run_id": outcome.run_id,
        "pipeline": outcome.pipeline,
        "status": str(outcome.status),
        "steps": [
            {
                "name": s.name,
                "status": str(s.status),
                "duration_s": s.duration_s,
                "outputs": {k: v.digest for k, v in s.outputs.items()},
                "reasons": list(s.reasons),
                "error": s.error,
            }
            for s in outcome.steps
        ],
    }
