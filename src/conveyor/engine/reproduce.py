"""``conveyor reproduce RUN``: rebuild a run from scratch and compare every artifact digest.

The run's commit is checked out into a fresh git worktree, its uncommitted diff (if it had
one) applied, and the pipeline executed there without cache, with the same params, recording
into the same stores. Then every output of every step is compared with the original.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.engine.gitinfo import git_state
from conveyor.engine.project import Project
from conveyor.errors import ConveyorError, UsageError
from conveyor.store import db, queries


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    step: str
    output: str
    original: str | None
    reproduced: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReproduceReport:
    original: str
    reproduced: str | None
    compared: int
    divergence: Divergence | None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.error is None and self.divergence is None

    def to_json(self) -> dict[str, Any]:
        d = self.divergence
        return {
            "original": self.original,
            "reproduced": self.reproduced,
            "identical": self.identical,
            "artifacts_compared": self.compared,
            "divergence": None
            if d is None
            else {
                "step": d.step,
                "output": d.output,
                "original": d.original,
                "reproduced": d.reproduced,
            },
            "error": self.error,
            "notes": self.notes,
        }


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)


def prepare_workspace(project: Project, run: Any, workspace: Path, notes: list[str]) -> Path:
    """Materialize the run's code in ``workspace``; returns the project directory in it."""
    if run.git_commit:
        state = git_state(project.root)
        if state.toplevel is None:
            raise UsageError(
                f"run {run.id} was made at commit {run.git_commit[:12]}, but "
                f"{project.root} is not in a git repository any more"
            )
        added = _git(state.toplevel, "worktree", "add", "--detach", str(workspace), run.git_commit)
        if added.returncode != 0:
            raise UsageError(
                f"cannot check out commit {run.git_commit[:12]}: {added.stderr.decode().strip()}",
                hint="fetch the commit (git fetch) and try again",
            )
        if run.git_diff_digest:
            patch = project.artifacts.blobs.get_bytes(run.git_diff_digest)
            applied = _git(workspace, "apply", "--binary", "--whitespace=nowarn", "-", stdin=patch)
            if applied.returncode != 0:
                raise ConveyorError(
                    f"the recorded diff of run {run.id} does not apply: "
                    f"{applied.stderr.decode().strip()}"
                )
            notes.append("applied the run's uncommitted diff")
        return workspace / run.project_subdir if run.project_subdir else workspace
    notes.append("the run was not made in a git repository; reproducing from the current files")
    shutil.copytree(
        project.root,
        workspace,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".conveyor", ".git", ".venv", "__pycache__"),
    )
    return workspace


def compare_runs(project: Project, original: str, reproduced: str) -> tuple[int, Divergence | None]:
    old_steps = queries.step_runs(project.metadata, original)
    new_steps = {s.name: s for s in queries.step_runs(project.metadata, reproduced)}
    compared = 0
    for old in old_steps:
        new = new_steps.get(old.name)
        for name, digest in sorted(old.outputs.items()):
            got = new.outputs.get(name) if new else None
            if got != digest:
                return compared, Divergence(
                    step=old.name, output=name, original=digest, reproduced=got
                )
            compared += 1
    return compared, None


def reproduce(
    project: Project, run_ref: str, *, keep: bool = False, stream: Any = None
) -> ReproduceReport:
    run = queries.get_run(project.metadata, run_ref)
    if run.status != "succeeded":
        raise UsageError(
            f"run {run.id} did not succeed ({run.status}); there is nothing to compare with",
            hint="reproduce a successful run",
        )
    tags = queries.run_tags(project.metadata, run.id)
    cli_params: dict[str, str] = json.loads(tags.get("cli_params", "{}"))
    notes: list[str] = []
    parent = Path(tempfile.mkdtemp(prefix=f"conveyor-reproduce-{run.id}-"))
    workspace = parent / "workspace"
    try:
        project_dir = prepare_workspace(project, run, workspace, notes)
        argv = [
            sys.executable,
            "-m",
            "conveyor",
            "-C",
            str(project_dir),
            "run",
            run.pipeline,
            "--no-cache",
            "--json",
            "--reproduces",
            run.id,
        ]
        for key, value in cli_params.items():
            argv += ["-p", f"{key}={value}"]
        env = dict(os.environ)
        env["CONVEYOR_METADATA_URL"] = db.normalize_url(
            project.config.stores.metadata, project.root
        )
        env["CONVEYOR_ARTIFACTS_URL"] = project.artifacts_url
        proc = subprocess.run(
            argv, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=stream, check=False
        )
        try:
            outcome = json.loads(proc.stdout or b"{}")
        except ValueError:
            outcome = {}
        new_id = outcome.get("run_id")
        if proc.returncode != 0 or not new_id:
            return ReproduceReport(
                original=run.id,
                reproduced=new_id,
                compared=0,
                divergence=None,
                notes=notes,
                error=f"the reproduction run failed (exit code {proc.returncode})",
            )
        compared, divergence = compare_runs(project, run.id, new_id)
        return ReproduceReport(
            original=run.id,
            reproduced=new_id,
            compared=compared,
            divergence=divergence,
            notes=notes,
        )
    finally:
        if keep:
            notes.append(f"workspace kept at {workspace}")
        else:
            if run.git_commit and workspace.exists():
                state = git_state(project.root)
                if state.toplevel is not None:
                    _git(state.toplevel, "worktree", "remove", "--force", str(workspace))
            shutil.rmtree(parent, ignore_errors=True)
