"""The blob store on a non-local fsspec filesystem (fsspec's in-memory one stands in for S3)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import fsspec
import pytest

from conveyor.errors import IntegrityError, NotFoundError
from conveyor.store.blobs import BlobStore


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(f"memory://bucket-{uuid.uuid4().hex[:8]}/prefix", tmp_path / "cache")


def test_put_and_read_back_through_the_local_cache(store: BlobStore) -> None:
    digest, size = store.put_bytes(b"hello remote")
    assert digest == hashlib.sha256(b"hello remote").hexdigest() and size == 12
    fs = fsspec.filesystem("memory")
    assert fs.cat(store.key(digest)) == b"hello remote"
    assert store.get_bytes(digest) == b"hello remote"
    assert store.exists(digest)
    # Nothing is left in the staging area once the object is uploaded.
    assert not list((store.cache_dir / "tmp").glob("*.partial"))


def test_corrupt_remote_object_is_quarantined_not_served(store: BlobStore) -> None:
    digest, _ = store.put_bytes(b"precious bytes")
    fs = fsspec.filesystem("memory")
    fs.pipe(store.key(digest), b"precious bytez")
    with pytest.raises(IntegrityError):
        store.local_path(digest)
    assert not store.exists(digest)
    assert fs.glob(f"{store.root}/quarantine/{digest}.*")
    assert store.verify(digest) is False
    with pytest.raises(NotFoundError):
        store.get_bytes(digest)
