"""Artifacts: values saved through a materializer into the blob store, addressed by digest."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from conveyor.core.records import ArtifactInfo
from conveyor.store import materializers as mz
from conveyor.store.blobs import BlobStore, file_digest

# Materializers that only parse data (no code can run while loading), so their parsing may
# overlap with digest verification.
DATA_ONLY = frozenset({"pandas.parquet", "arrow.parquet", "numpy.npy"})
PARALLEL_VERIFY_BYTES = 16 << 20


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
        """The value of an artifact; never returned unless its bytes match the digest."""
        materializer = mz.by_name(info.materializer)
        ctx = self.ctx
        if scratch is not None:
            ctx = mz.MaterializeContext(
                trust_pickle=ctx.trust_pickle, skops_types=ctx.skops_types, scratch=scratch
            )
        if (
            self.blobs.remote
            or info.size < PARALLEL_VERIFY_BYTES
            or info.materializer not in DATA_ONLY
        ):
            return materializer.load(self.blobs.local_path(info.digest), dict(info.meta), ctx)
        # Large tables and arrays: hash in a thread (hashlib releases the GIL) while the
        # parser reads, and discard the value if the digest does not match.
        path = self.blobs.unverified_path(info.digest)
        digest: list[str] = []
        hasher = threading.Thread(target=lambda: digest.append(file_digest(path)), daemon=True)
        hasher.start()
        try:
            value = materializer.load(path, dict(info.meta), ctx)
        except Exception:
            hasher.join()
            self.blobs.check(path, info.digest, digest[0] if digest else None)
            raise
        hasher.join()
        self.blobs.check(path, info.digest, digest[0] if digest else None)
        return value

    def save_text(self, text: str) -> str:
        digest, _ = self.blobs.put_bytes(text.encode("utf-8", errors="replace"))
        return digest

    def load_text(self, digest: str) -> str:
        return self.blobs.get_bytes(digest).decode("utf-8", errors="replace")
