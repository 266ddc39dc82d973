"""Content-addressed blobs: ``objects/ab/abcdef…`` under a local directory or any fsspec URL.

Bytes are written to a temporary name, hashed, and only then moved (locally: renamed; remote:
PUT whole) under their digest, so a final key never holds a partial object. Reads verify the
digest; a blob that does not verify is moved to ``quarantine/`` and reported as missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.errors import IntegrityError, NotFoundError

log = logging.getLogger("conveyor.store")

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tree_digest(root: Path) -> str:
    """Digest of a directory's content: relative paths, executable bits and file digests."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            mode = "x" if os.access(full, os.X_OK) else "-"
            h.update(f"{rel}\0{mode}\0{file_digest(full)}\n".encode())
    return h.hexdigest()


def path_digest(path: Path) -> str:
    """Digest of a file's bytes, or of a directory's tree."""
    return tree_digest(path) if path.is_dir() else file_digest(path)


def is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class BlobStore:
    """Immutable blobs keyed by sha256. ``url`` is a directory path or an fsspec URL."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        self.url = url
        self.remote = "://" in url and not url.startswith("file://")
        self.cache_dir = cache_dir
        self._fs: Any = None
        self._dirs: set[str] = set()  # object directories known to exist
        if self.remote:
            self.root = url.rstrip("/")
            self.staging = cache_dir / "tmp"
        else:
            self.root = str(Path(url.removeprefix("file://")).resolve())
            self.staging = Path(self.root, "tmp")
        self._staging_ready = False

    # -- layout ----------------------------------------------------------------------------
    def key(self, digest: str) -> str:
        if not is_digest(digest):
            raise NotFoundError(f"'{digest}' is not a sha256 digest")
        return f"{self.root}/objects/{digest[:2]}/{digest[2:]}"

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs, _ = fsspec.core.url_to_fs(self.url)
        return self._fs

    def staging_path(self) -> Path:
        """A fresh temporary file path, on the same filesystem as the blobs when local.

        The name carries this host and process, so that the files of a writer that was killed
        can be recognised and removed (see :meth:`clean_staging`).
        """
        if not self._staging_ready:
            self.staging.mkdir(parents=True, exist_ok=True)
            self._staging_ready = True
        return self.staging / f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex}.partial"

    # -- writing ---------------------------------------------------------------------------
    def put_file(self, path: Path, *, move: bool = False) -> tuple[str, int]:
        """Store the file at ``path``; return (digest, size). ``move`` consumes the file."""
        digest = file_digest(path)
        size = path.stat().st_size
        target = self.key(digest)
        if self.remote:
            if not self.fs.exists(target):
                self.fs.put_file(str(path), target)
            if move:
                path.unlink()
            return digest, size
        if os.path.exists(target):
            if os.path.getsize(target) == size and file_digest(Path(target)) == digest:
                if move:
                    path.unlink()
                return digest, size
            self.quarantine(digest)  # a damaged copy: replace it with the good bytes

        source = path
        if not move:
            source = self.staging_path()
            shutil.copyfile(path, source)
        parent = os.path.dirname(target)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if not source.exists():
                raise
            os.makedirs(parent, exist_ok=True)  # the directory was removed since we made it
            os.replace(source, target)
        return digest, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        tmp = self.staging_path()
        with open(tmp, "wb") as f:
            f.write(data)
        return self.put_file(tmp, move=True)

    # -- reading ---------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        target = self.key(digest)
        return self.fs.exists(target) if self.remote else os.path.exists(target)

    def local_path(self, digest: str) -> Path:
        """A local file holding the blob, verified against its digest.

        Raises NotFoundError when the blob is missing and IntegrityError (after quarantining
        it) when its bytes do not match.
        """
        target = self.key(digest)
        if self.remote:
            local = self.cache_dir / "objects" / digest[:2] / digest[2:]
            if local.exists() and file_digest(local) != digest:
                local.unlink()  # a damaged local copy: fetch the object again
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.staging_path()
                try:
                    self.fs.get_file(target, str(tmp))
                except FileNotFoundError:
                    raise NotFoundError(
                        f"artifact {digest[:12]} is missing from {self.url}"
                    ) from None
                if file_digest(tmp) != digest:
                    tmp.unlink()
                    self.quarantine(digest)
                    raise IntegrityError(f"artifact {digest[:12]} in {self.url} is corrupt")
                os.replace(tmp, local)
            return local
        path = self.unverified_path(digest)
        self.check(path, digest)
        return path

    def unverified_path(self, digest: str) -> Path:
        """The local file of a blob of a local store, before verification (see :meth:`check`)."""
        path = Path(self.key(digest))
        if not path.exists():
            raise NotFoundError(f"artifact {digest[:12]} is missing from {self.root}")
        return path

    def check(self, path: Path, digest: str, actual: str | None = None) -> None:
        """Raise IntegrityError, after quarantining the blob, when ``path`` is not ``digest``."""
        if (actual or file_digest(path)) != digest:
            self.quarantine(digest)
            raise IntegrityError(
                f"artifact {digest[:12]} in {self.root} does not match its digest; "
                "it was moved to quarantine/"
            )

    def get_bytes(self, digest: str) -> bytes:
        return self.local_path(digest).read_bytes()

    def verify(self, digest: str) -> bool:
        """True when the blob exists and verifies; a corrupt blob is quarantined."""
        try:
            self.local_path(digest)
        except NotFoundError:
            return False
        except IntegrityError as exc:
            log.warning("%s", exc)
            return False
        return True

    def quarantine(self, digest: str) -> None:
        target = self.key(digest)
        dest = f"{self.root}/quarantine/{digest}.{int(time.time())}"
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                self.fs.mv(target, dest)
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, dest)

    def clean_staging(
        self, alive: Callable[[int], bool] | None = None, older_than_s: float = 6 * 3600
    ) -> int:
        """Remove temporary files left by killed writers: those of a process of this host that
        ``alive(pid)`` says is gone, and any older than ``older_than_s``. Returns the count."""
        removed = 0
        cutoff = time.time() - older_than_s
        for p in self.staging.glob("*.partial"):
            host, _, rest = p.name.partition("-")
            pid_text = rest.partition("-")[0]
            dead = (
                alive is not None
                and host == _HOST
                and pid_text.isdigit()
                and not alive(int(pid_text))
            )
            with contextlib.suppress(FileNotFoundError):
                if dead or p.stat().st_mtime < cutoff:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink()
                    removed += 1
        return removed


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
