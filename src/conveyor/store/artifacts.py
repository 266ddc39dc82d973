"""Artifacts: values saved through a materializer into the blob store, addressed by digest."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from conveyor.core.records import ArtifactInfo
from conveyor.store import materializers as mz
from conveyor.store.blobs import BlobStore


class ArtifactStore:
    """Save and load step values. Loading always verifies the blob's digest first."""

    def __init__(self, blobs: BlobStore, ctx: mz.MaterializeContext) -> None:
        self.blobs = blobs
        self.ctx = ctx

    def save(self, value: Any) -> ArtifactInfo:
        materializer = mz.choose(value, self.ctx)
        tmp = self.blobs.staging_path()
        try:
            meta = materializer.save(value, tmp, self.ctx)
            digest, size = self.blobs.put_file(tmp, move=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        kind = type(value)
        return ArtifactInfo(
            digest=digest,
            materializer=materializer.name,
            type_name=f"{kind.__module__}.{kind.__qualname__}",
            size=size,
            meta=meta,
        )

    def load(self, info: ArtifactInfo, scratch: Path | None = None) -> Any:
        path = self.blobs.local_path(info.digest)
        ctx = self.ctx
        if scratch is not None:
            ctx = mz.MaterializeContext(
                trust_pickle=ctx.trust_pickle, skops_types=ctx.skops_types, scratch=scratch
            )
        return mz.by_name(info.materializer).load(path, dict(info.meta), ctx)

    def save_text(self, text: str) -> str:
        digest, _ = self.blobs.put_bytes(text.encode("utf-8", errors="replace"))
        return digest

    def load_text(self, digest: str) -> str:
        return self.blobs.get_bytes(digest).decode("utf-8", errors="replace")
