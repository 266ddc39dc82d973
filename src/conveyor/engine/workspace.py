"""The project's working tree as cmd steps see it: their declared outputs live there."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from conveyor.core.records import ArtifactInfo
from conveyor.store.artifacts import ArtifactStore
from conveyor.store.blobs import file_digest, path_digest


def restore_outs(
    root: Path, artifacts: ArtifactStore, outputs: Mapping[str, ArtifactInfo], scratch: Path
) -> None:
    """Put a cached cmd step's output files back in the workspace where they differ."""
    for rel, info in outputs.items():
        target = root / rel
        if info.materializer == "file":
            if target.is_file() and file_digest(target) == info.digest:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.conveyor-restore")
            shutil.copyfile(artifacts.blobs.local_path(info.digest), tmp)
            tmp.replace(target)
        elif info.materializer == "directory.tar":
            if target.is_dir() and path_digest(target) == info.meta.get("tree"):
                continue
            restored = artifacts.load(info, scratch / info.digest)
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(restored), target)
