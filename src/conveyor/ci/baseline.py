"""The baseline of a change: a successful run of the pipeline at the merge-base of the branch
and the base branch (by default the repository's default branch).

With a shared metadata store, someone has usually run the pipeline on that commit already
(``conveyor run`` on every merge): the latest such run is used. Otherwise the baseline is
computed by running the pipeline at the merge-base in a temporary git worktree, with the
project's own stores, so every step whose cache key is unchanged is reused.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import sqlalchemy as sa

from conveyor.ci.result import Baseline
from conveyor.config import CONFIG_NAME, load_config
from conveyor.engine.project import Project
from conveyor.engine.run import RunOptions, run_pipeline
from conveyor.errors import ConveyorError, UsageError
from conveyor.store import db
from conveyor.store import tables as t

_DEFAULT_BRANCHES = ("main", "master")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def _verify(root: Path, ref: str) -> str | None:
    if ref.startswith("-"):  # never let a ref be read as an option of git
        return None
    proc = _git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    return proc.stdout.strip() if proc.returncode == 0 else None


def default_branch(root: Path) -> str | None:
    """origin's HEAD when it is known, else ``main`` or ``master``, local or on origin."""
    head = _git(root, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD")
    if head.returncode == 0 and head.stdout.strip():
        return head.stdout.strip()
    for name in _DEFAULT_BRANCHES:
        for ref in (name, f"origin/{name}"):
            if _verify(root, ref):
                return ref
    return None


def merge_base(
    root: Path, base: str | None, *, explicit: bool
) -> tuple[str | None, str | None, str]:
    """(base ref, merge-base commit, reason when there is none). A base named by the user
    that does not exist is a usage error; a missing default branch only means no baseline."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        return base, None, "the project is not in a git repository"
    ref = base or default_branch(root)
    if ref is None:
        return None, None, "no default branch (main, master or origin/HEAD) was found"
    if _verify(root, ref) is None:
        if explicit:
            raise UsageError(
                f"--base {ref}: no such branch, tag or commit",
                hint="fetch it first (git fetch origin main), or name another with --base",
            )
        return ref, None, f"the base branch '{ref}' does not exist here"
    head = _verify(root, "HEAD")
    if head is None:
        return ref, None, "the repository has no commit yet"
    found = _git(root, "merge-base", head, ref)
    if found.returncode != 0:
        return ref, None, f"HEAD and {ref} have no common ancestor (a shallow clone?)"
    return ref, found.stdout.strip(), ""


def find_run(
    project: Project, commit: str, pipeline: str, subdir: str, exclude: str | None = None
) -> str | None:
    """The latest successful clean run of ``pipeline`` at ``commit`` in this project."""
    runs = t.runs
    query = (
        sa.select(runs.c.id)
        .where(
            runs.c.git_commit == commit,
            runs.c.pipeline == pipeline,
            runs.c.status == "succeeded",
            runs.c.git_dirty.is_(False),
            runs.c.project_subdir == subdir,
        )
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(2)
    )
    with project.metadata.engine.connect() as conn:
        ids = [str(r[0]) for r in conn.execute(query)]
    return next((i for i in ids if i != exclude), None)


def store_environ(project: Project) -> dict[str, str]:
    """Environment overrides that point another checkout of the project at these stores."""
    return {
        **project.environ,
        "CONVEYOR_METADATA_URL": db.normalize_url(project.config.stores.metadata, project.root),
        "CONVEYOR_ARTIFACTS_URL": project.artifacts_url,
    }


def compute(
    project: Project,
    commit: str,
    subdir: str,
    pipeline: str,
    params: Mapping[str, str],
    say: Callable[[str], None],
) -> tuple[str | None, str]:
    """Run ``pipeline`` at ``commit`` in a temporary worktree; (run id, reason if none)."""
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-baseline-"))
    tree = scratch / "tree"
    top = _git(project.root, "rev-parse", "--show-toplevel").stdout.strip()
    added = _git(Path(top), "worktree", "add", "--detach", "--quiet", str(tree), commit)
    if added.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        return None, f"git worktree add failed: {added.stderr.strip()}"
    try:
        root = (tree / subdir).resolve()
        if not (root / CONFIG_NAME).is_file():
            return None, f"the merge-base {commit[:10]} has no {CONFIG_NAME} in '{subdir or '.'}'"
        env = store_environ(project)
        say(f"computing the baseline at {commit[:10]} in a temporary worktree")
        with Project(root, load_config(root / CONFIG_NAME, env), env) as base:
            outcome = run_pipeline(base, RunOptions(pipeline=pipeline, params=dict(params)))
        if outcome.status != "succeeded":
            failed = [s.name for s in outcome.steps if s.status == "failed"]
            return None, f"the pipeline failed at the merge-base (step {', '.join(failed)})"
        return outcome.run_id, ""
    except ConveyorError as exc:
        return None, f"the pipeline could not run at the merge-base: {exc.message}"
    finally:
        _git(Path(top), "worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)
        _git(Path(top), "worktree", "prune")


def resolve_baseline(
    project: Project,
    *,
    base: str | None,
    explicit: bool,
    pipeline: str,
    params: Mapping[str, str],
    candidate_run: str | None,
    compute_missing: bool,
    say: Callable[[str], None],
) -> Baseline:
    """Find the baseline run in the store, or compute it; never raises for a missing one."""
    from conveyor.engine.gitinfo import git_state

    ref, commit, reason = merge_base(project.root, base, explicit=explicit)
    if commit is None:
        return Baseline(base_ref=ref, commit=None, run_id=None, source="none", reason=reason)
    subdir = git_state(project.root).subdir  # as runs record it ("." at the top)
    found = find_run(project, commit, pipeline, subdir, exclude=candidate_run)
    if found is not None:
        return Baseline(base_ref=ref, commit=commit, run_id=found, source="store")
    if not compute_missing:
        why = f"no successful run of '{pipeline}' at {commit[:10]} in the metadata store"
        return Baseline(base_ref=ref, commit=commit, run_id=None, source="none", reason=why)
    run_id, reason = compute(project, commit, subdir, pipeline, params, say)
    source = "computed" if run_id else "none"
    return Baseline(base_ref=ref, commit=commit, run_id=run_id, source=source, reason=reason)
