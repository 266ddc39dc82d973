"""What a run records about the code it ran: commit, dirty flag and the uncommitted diff."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class GitState:
    commit: str | None
    dirty: bool
    diff: bytes  # tracked changes and untracked files, as a binary patch against ``commit``
    toplevel: Path | None
    subdir: str  # the project directory relative to the repository root


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=check)


def git_state(root: Path) -> GitState:
    """The state of the git repository holding ``root``; empty when there is none."""
    try:
        top = _git(root, "rev-parse", "--show-toplevel", check=False)
    except FileNotFoundError:
        return GitState(commit=None, dirty=False, diff=b"", toplevel=None, subdir="")
    if top.returncode != 0:
        return GitState(commit=None, dirty=False, diff=b"", toplevel=None, subdir="")
    toplevel = Path(top.stdout.decode().strip()).resolve()
    subdir = root.resolve().relative_to(toplevel).as_posix()
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    commit = head.stdout.decode().strip() if head.returncode == 0 else None
    status = _git(toplevel, "status", "--porcelain", "--untracked-files=all").stdout
    if not status.strip():
        return GitState(commit=commit, dirty=False, diff=b"", toplevel=toplevel, subdir=subdir)
    diff = _git(toplevel, "diff", "--binary", "HEAD").stdout if commit else b""
    untracked = _git(toplevel, "ls-files", "--others", "--exclude-standard", "-z").stdout
    for name in filter(None, untracked.split(b"\0")):
        extra = _git(
            toplevel,
            "diff",
            "--binary",
            "--no-index",
            "--",
            "/dev/null",
            name.decode(),
            check=False,
        ).stdout
        diff += extra
    return GitState(commit=commit, dirty=True, diff=diff, toplevel=toplevel, subdir=subdir)
