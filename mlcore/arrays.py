"""Decoded images on disk, read a batch at a time: memory stays flat in the dataset's size.

A dataset's images are one file of uint8 rows (``count`` images of one shape).
:class:`Images` is a numpy-like, read-only view of some of its rows: splits and
subsets are index arrays into the file, never copies, and indexing a view reads
just the rows asked for (``os.pread``: no shared file position, so threads may
read at once; the page cache, not the process, holds what was read recently).
Where a whole array is wanted, ``numpy.asarray(view)`` reads it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np


def _close(handle: int) -> None:
    with contextlib.suppress(OSError):
        os.close(handle)


class ImageFile:
    """``count`` uint8 images of ``shape`` stored back to back in ``path``."""

    def __init__(self, path: Path | str, count: int, shape: tuple[int, ...]):
        self.path, self.count, self.shape = Path(path), int(count), tuple(int(v) for v in shape)
        self.row_bytes = int(np.prod(self.shape))
        size = self.path.stat().st_size
        if size != self.count * self.row_bytes:
            raise ValueError(f"{self.path} holds {size:,} bytes, not {self.count:,} images of {self.shape}")
        self._handle = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # only where there is no pread (Windows)
        weakref.finalize(self, _close, self._handle)

    def __reduce__(self):
        return (ImageFile, (self.path, self.count, self.shape))

    def _read(self, offset: int, size: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._handle, size, offset)
        with self._lock:
            os.lseek(self._handle, offset, os.SEEK_SET)
            return os.read(self._handle, size)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The images at ``rows`` (any order), one read per run of consecutive rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape), dtype=np.uint8)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.count:
            raise IndexError(f"row out of range for {self.count} images")
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        flat = out.reshape(len(rows), -1)
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            size = (stop - start) * self.row_bytes
            data = self._read(int(rows[start]) * self.row_bytes, size)
            if len(data) != size:
                raise OSError(f"{self.path} ended early: it was changed or truncated while in use")
            flat[start:stop] = np.frombuffer(data, dtype=np.uint8).reshape(stop - start, -1)
        return out


class Images:
    """Some rows of an :class:`ImageFile` or of an in-memory array, read on demand.

    Behaves like a read-only uint8 array of shape ``(n, height, width, 3)`` for
    ``len``, ``shape``, ``dtype``, integer, slice and index-array access and
    ``numpy.asarray``; :meth:`take` makes a sub-view without reading anything.
    """

    def __init__(self, base: ImageFile | np.ndarray, rows: np.ndarray | None = None):
        self.base = base
        total = base.count if isinstance(base, ImageFile) else len(base)
        self.rows = np.arange(total, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if isinstance(base, np.ndarray):
            base.flags.writeable = False  # shared by every view of it

    @property
    def shape(self) -> tuple[int, ...]:
        inner = self.base.shape if isinstance(self.base, ImageFile) else self.base.shape[1:]
        return (len(self.rows), *inner)

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        return len(self.rows)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        if isinstance(self.base, ImageFile):
            return self.base.read(rows)
        return self.base[rows]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._gather(self.rows[[key]])[0]
        return self._gather(self.rows[key])

    def take(self, indices: np.ndarray) -> Images:
        """The view of rows ``indices`` of this view."""
        return Images(self.base, self.rows[np.asarray(indices, dtype=np.int64)])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self._gather(self.rows)
        return array if dtype is None else array.astype(dtype)

    def batches(self, size: int = 256):
        """Consecutive views of at most ``size`` rows, each read when it is indexed."""
        for start in range(0, len(self), size):
            yield self[start : start + size]


class ImageWriter:
    """Append decoded images to a temporary file; :meth:`finish` moves it into place."""

    def __init__(self, target: Path, shape: tuple[int, ...]):
        self.target, self.shape, self.count = Path(target), tuple(shape), 0
        self.target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.target.parent, prefix=".", suffix=".tmp")
        self._stream, self._name = os.fdopen(handle, "wb"), name

    def append(self, images: np.ndarray) -> None:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.shape[1:] != self.shape:
            raise ValueError(f"images of shape {images.shape[1:]} in a file of {self.shape}")
        self._stream.write(images.tobytes())
        self.count += len(images)

    def finish(self) -> ImageFile:
        self._stream.close()
        os.replace(self._name, self.target)
        return ImageFile(self.target, self.count, self.shape)

    def abandon(self) -> None:
        self._stream.close()
        Path(self._name).unlink(missing_ok=True)
