"""Content-addressed blobs on a local directory: layout, dedup, verification, quarantine."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from conveyor.errors import IntegrityError, NotFoundError
from conveyor.store.blobs import BlobStore, path_digest, tree_digest


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "store"), cache_dir=tmp_path / "cache")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(root: Path, sub: str) -> list[Path]:
    return sorted(p for p in (root / sub).rglob("*") if p.is_file())


def test_put_and_get_round_trip(blobs: BlobStore) -> None:
    data = b"hello, conveyor\x00\xff"
    digest, size = blobs.put_bytes(data)
    assert digest == sha(data)
    assert size == len(data)
    assert blobs.get_bytes(digest) == data
    assert blobs.exists(digest)
    assert blobs.verify(digest)


def test_layout_is_objects_prefix_rest(blobs: BlobStore, tmp_path: Path) -> None:
    digest, _ = blobs.put_bytes(b"layout")
    expected = tmp_path / "store" / "objects" / digest[:2] / digest[2:]
    assert expected.is_file()
    assert blobs.local_path(digest) == expected.resolve()
    assert stored_files(tmp_path / "store", "objects") == [expected.resolve()]


def test_put_file_keeps_or_consumes_the_source(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    digest, _ = blobs.put_file(src)
    assert src.read_bytes() == b"weights"
    moved = tmp_path / "other.bin"
    moved.write_bytes(b"more weights")
    digest2, _ = blobs.put_file(moved, move=True)
    assert not moved.exists()
    assert blobs.get_bytes(digest) == b"weights"
    assert blobs.get_bytes(digest2) == b"more weights"


def test_identical_content_is_stored_once(blobs: BlobStore, tmp_path: Path) -> None:
    first, _ = blobs.put_bytes(b"same")
    src = tmp_path / "same.txt"
    src.write_bytes(b"same")
    second, _ = blobs.put_file(src)
    third, _ = blobs.put_bytes(b"same")
    assert first == second == third
    assert len(stored_files(tmp_path / "store", "objects")) == 1


def test_no_partial_file_is_left_after_put(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_bytes(b"copied")
    blobs.put_bytes(b"a")
    blobs.put_bytes(b"a")
    blobs.put_file(src)
    assert list((tmp_path / "store").rglob("*.partial")) == []


def test_flipped_byte_is_detected_and_quarantined(blobs: BlobStore, tmp_path: Path) -> None:
    digest, _ = blobs.put_bytes(b"precious model bytes")
    path = blobs.local_path(digest)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match=f"{digest[:12]}.*quarantine"):
        blobs.local_path(digest)

    assert not path.exists()
    assert not blobs.exists(digest)
    quarantined = stored_files(tmp_path / "store", "quarantine")
    assert len(quarantined) == 1
    assert quarantined[0].name.startswith(digest)
    assert quarantined[0].read_bytes() == bytes(data)
    with pytest.raises(NotFoundError):
        blobs.get_bytes(digest)


def test_verify_is_false_for_missing_and_corrupt(blobs: BlobStore) -> None:
    assert blobs.verify("0" * 64) is False
    digest, _ = blobs.put_bytes(b"will rot")
    blobs.local_path(digest).write_bytes(b"has rot!")
    assert blobs.verify(digest) is False
    assert blobs.verify(digest) is False
    assert not blobs.exists(digest)


def test_corrupt_blob_can_be_stored_again_after_quarantine(blobs: BlobStore) -> None:
    digest, _ = blobs.put_bytes(b"recompute me")
    blobs.local_path(digest).write_bytes(b"truncated")
    assert blobs.verify(digest) is False
    again, _ = blobs.put_bytes(b"recompute me")
    assert again == digest
    assert blobs.get_bytes(digest) == b"recompute me"


def test_truncated_blob_is_replaced_by_a_new_put(blobs: BlobStore) -> None:
    digest, _ = blobs.put_bytes(b"full content")
    blobs.local_path(digest).write_bytes(b"full")
    blobs.put_bytes(b"full content")
    assert blobs.get_bytes(digest) == b"full content"


def test_put_repairs_a_corrupt_blob_of_the_same_size(blobs: BlobStore) -> None:
    digest, _ = blobs.put_bytes(b"precious model bytes")
    path = blobs.local_path(digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    blobs.put_bytes(b"precious model bytes")
    assert blobs.get_bytes(digest) == b"precious model bytes"


def test_missing_blob_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFoundError, match="missing"):
        blobs.local_path("a" * 64)


@pytest.mark.parametrize("bad", ["abc", "../../etc/passwd", "G" * 64, "A" * 64])
def test_non_digest_keys_are_refused(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(NotFoundError, match="not a sha256 digest"):
        blobs.local_path(bad)


def test_clean_staging_removes_only_old_partial_files(blobs: BlobStore, tmp_path: Path) -> None:
    staging = tmp_path / "store" / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    old = staging / "dead-writer.partial"
    old.write_bytes(b"half")
    old_dir = staging / "dead-dir.partial"
    old_dir.mkdir()
    (old_dir / "x").write_bytes(b"x")
    fresh = staging / "live-writer.partial"
    fresh.write_bytes(b"in progress")
    unrelated = staging / "keep.txt"
    unrelated.write_bytes(b"not ours")
    long_ago = time.time() - 7200
    for p in (old, old_dir, unrelated):
        os.utime(p, (long_ago, long_ago))

    assert blobs.clean_staging(older_than_s=3600) == 2
    assert not old.exists()
    assert not old_dir.exists()
    assert fresh.exists()
    assert unrelated.exists()


def test_clean_staging_removes_files_of_dead_writers_of_this_host_at_once(
    blobs: BlobStore,
) -> None:
    mine = blobs.staging_path()
    mine.write_bytes(b"being written")
    host, pid, _ = mine.name.split("-", 2)
    dead = blobs.staging / f"{host}-999999999-{'0' * 32}.partial"
    dead.write_bytes(b"abandoned")
    other_host = blobs.staging / f"ffffffff-999999999-{'1' * 32}.partial"
    other_host.write_bytes(b"maybe alive elsewhere")

    removed = blobs.clean_staging(alive=lambda p: p == int(pid))
    assert removed == 1
    assert not dead.exists()
    assert mine.exists() and other_host.exists()


def test_directory_digest_depends_on_content_not_mtime(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "x.txt").write_text("x")
        (root / "y.txt").write_text("y")
    os.utime(b / "y.txt", (1, 1))
    assert tree_digest(a) == tree_digest(b) == path_digest(a)
    (b / "sub" / "x.txt").write_text("changed")
    assert tree_digest(a) != tree_digest(b)
    before = tree_digest(a)
    (a / "y.txt").rename(a / "z.txt")
    assert tree_digest(a) != before
