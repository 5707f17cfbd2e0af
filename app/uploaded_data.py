"""Zips of images a visitor uploads on the Data page: private to their session.

Each session that uploads gets its own folder under the server's temp directory,
named by a random token and never listed. The folder, and the decoded images
cached under each zip's content hash, are deleted when the session's state is
dropped or when the server stops. Streamlit drops a closed tab's session only
lazily (some time after ``server.disconnectedSessionTTL``), and a crash runs no
finalizer, so every page run of the session marks its folder as used, and
folders unused for six hours are swept when any session uploads. A session keeps
one zip: a new upload replaces the last.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path

from mlcore import archives, datasets, store

STALE_SECONDS = 6 * 3600
SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def root() -> Path:
    return Path(tempfile.gettempdir()) / "mlcore-uploads"


def safe_name(name: str) -> str:
    """A file name a visitor chose, as one harmless path component ending in .zip."""
    stem = SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .") or "upload"
    stem = stem[:80]
    return stem if stem.lower().endswith(".zip") else f"{stem}.zip"


def _release(folder: Path, digests: set[str]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for digest in digests:
        datasets.forget_archive(digest)


def sweep(now: float | None = None) -> None:
    """Delete session folders unused for :data:`STALE_SECONDS`."""
    now = time.time() if now is None else now
    for folder in root().glob("session-*"):
        try:
            if now - folder.stat().st_mtime > STALE_SECONDS:
                _release(folder, {zip_folder.name for zip_folder in folder.iterdir()})  # named by digest
        except OSError:
            continue


class SessionUploads:
    """One session's uploaded zips; everything it wrote goes when it is garbage-collected."""

    def __init__(self) -> None:
        root().mkdir(parents=True, exist_ok=True)
        sweep()
        self.folder = Path(tempfile.mkdtemp(prefix="session-", dir=root()))
        self.digests: set[str] = set()
        self._finalizer = weakref.finalize(self, _release, self.folder, self.digests)

    def keep(self, name: str, data: bytes) -> Path:
        """Write an uploaded zip into the session's folder (atomically) and return its path.
        Refuses, with :class:`archives.ArchiveError`, a file over the size limit."""
        archives.check_size(len(data), archives.ZipLimits())
        digest = hashlib.sha256(data).hexdigest()
        target = self.folder / digest[:16] / safe_name(name)
        if not target.exists():
            store.write_atomic(target, data)
        for previous in self.digests - {digest}:  # one zip per session: the new one replaces the last
            shutil.rmtree(self.folder / previous[:16], ignore_errors=True)
            datasets.forget_archive(previous)
        self.digests.clear()  # the finalizer holds this very set
        self.digests.add(digest)
        return target

    def touch(self) -> None:
        """Mark the folder as in use now."""
        with contextlib.suppress(OSError):
            os.utime(self.folder)

    def release(self) -> None:
        """Delete everything now (the finalizer then has nothing left to do)."""
        self._finalizer()
