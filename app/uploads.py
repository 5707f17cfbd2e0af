"""Scoring uploaded images: each file once per model, in batches, every bad file on its own.

Probabilities are cached by (run, file content) in a dict the caller owns (the
session's), so reruns and threshold changes only re-threshold; decisions are made
at render time. Only a small JPEG thumbnail of each picture is kept: a person may
upload hundreds of photos of several megapixels each, and their decoded pixels
would not fit in a shared server's memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from app import runs
from mlcore import memory, predict

THUMBNAIL_PIXELS = 256
THUMBNAIL_QUALITY = 85
SCORE_BATCH = 32  # images decoded, resized and predicted together
MAX_FILES = 500  # files scored from one upload: the rest wait for a second batch (a shared server)
MAX_CACHED = 48  # results kept beyond the current upload's, for files put back later
NONE_LABEL = "none of the labels"

Source = tuple[str, "bytes | BinaryIO"]


@dataclasses.dataclass(frozen=True, eq=False)
class Scored:
    """One uploaded file: a thumbnail and probabilities, or the reason it was refused."""

    name: str
    thumbnail: bytes | None = None  # JPEG, THUMBNAIL_PIXELS square (the picture padded, not cropped)
    size: tuple[int, int] | None = None  # the original picture's width and height
    probabilities: dict[str, float] | None = None
    error: str | None = None
    digest: str = ""  # SHA-256 of the file's bytes: finds the upload again (for an explanation)

    def labels(self, thresholds: dict[str, float]) -> tuple[str, ...]:
        """Labels whose probability reaches their threshold."""
        return tuple(label for label, p in (self.probabilities or {}).items() if p >= thresholds[label])


def content(source: bytes | BinaryIO) -> bytes:
    """The whole content of an upload, however often it is asked for (a Streamlit
    ``UploadedFile`` is a ``BytesIO``; other files are read from their start)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    getvalue = getattr(source, "getvalue", None)
    if getvalue is not None:
        return getvalue()
    source.seek(0)
    return source.read()


def thumbnail_jpeg(image: Image.Image) -> bytes:
    """A small square JPEG of the whole of ``image`` (padded, not cropped), so cards in a
    grid line up; a few KB instead of the picture's decoded megabytes."""
    small = ImageOps.pad(image, (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS), color=(240, 242, 246))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def explanation_jpeg(run: runs.Run, data: bytes, label_index: int) -> bytes:
    """The upload as a card thumbnail with the Grad-CAM heatmap of one label laid over it.

    The network sees the whole picture squeezed to a square, so its square heatmap
    stretched back over the picture's own shape is where it looked.
    """
    from mlcore import explain  # deferred: importing TensorFlow costs seconds

    image = predict.load_image(data, draft=max(run.image_size, THUMBNAIL_PIXELS))
    heat = explain.gradcam(run.model, predict.to_model_input(image, run.image_size), label_index)
    small = image.copy()
    small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    return thumbnail_jpeg(Image.fromarray(explain.overlay(small, heat)))


def _prepare(name: str, data: bytes, image_size: int) -> tuple[Scored, np.ndarray | None]:
    """Decode one file into the model's input and a thumbnail, at no more than about twice the
    size either needs (a JPEG at 1/8 scale, others reduced before any conversion)."""
    try:
        image, size = predict.open_image(data, draft=max(image_size, THUMBNAIL_PIXELS))
        return Scored(name, thumbnail_jpeg(image), size), predict.to_model_input(image, image_size)
    except predict.ImageError as error:
        return Scored(name, error=str(error)), None
    except Exception as error:  # a picture that decoded but cannot be resized or re-encoded: refuse it alone
        return Scored(name, error=f"The image could not be prepared ({type(error).__name__}: {error})."), None


def _score_batch(run: runs.Run, batch: list[tuple[tuple, Scored, np.ndarray]], cache: dict) -> None:
    probabilities = predict.predict_proba(run.model, np.stack([pixels for _, _, pixels in batch]))
    for (key, scored, _), row in zip(batch, probabilities, strict=True):
        cache[key] = dataclasses.replace(
            scored, probabilities={label: float(p) for label, p in zip(run.label_names, row, strict=True)}
        )


def _trim(cache: dict, keep: set) -> None:
    """Drop the oldest results of files no longer uploaded, beyond ``MAX_CACHED`` of them."""
    others = [key for key in cache if key not in keep]
    for key in others[: max(0, len(others) - MAX_CACHED)]:
        del cache[key]


def _score_missing(run: runs.Run, missing: list, sources: dict, cache: dict, on_progress) -> None:
    """Decode, shrink and predict the files not scored yet, ``SCORE_BATCH`` at a time, into ``cache``."""
    batch: list[tuple[tuple, Scored, np.ndarray]] = []
    for done, (key, name) in enumerate(missing, 1):
        scored, pixels = _prepare(name, content(sources[key]), run.image_size)
        scored = dataclasses.replace(scored, digest=key[1])
        if pixels is None:
            cache[key] = scored
        else:
            batch.append((key, scored, pixels))
        if len(batch) == SCORE_BATCH:
            _score_batch(run, batch, cache)
            batch = []
        if on_progress is not None and (done % SCORE_BATCH == 0 or done == len(missing)):
            on_progress(done, len(missing))
    if batch:
        _score_batch(run, batch, cache)


def score(
    run: runs.Run,
    files: list[Source],
    cache: dict,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    guard: memory.MemoryGuard | None = None,
) -> list[Scored]:
    """Score ``(name, bytes or file)`` uploads with ``run``'s model, each file once.

    ``cache`` maps ``(run id, content digest)`` to results and is updated in place;
    results of other models are dropped from it. Files are read, decoded and
    predicted ``SCORE_BATCH`` at a time; ``on_progress(done, total)`` follows the
    files that had to be scored. When there are files to score, ``guard`` holds their memory
    while they are scored, or refuses them (:class:`mlcore.memory.MemoryBudgetExceeded`).
    Returns one result per file, in upload order.
    """
    for stale in [key for key in cache if key[0] != run.id]:
        del cache[stale]
    keys, missing, queued = [], [], set()
    for name, source in files:
        key = (run.id, hashlib.sha256(content(source)).hexdigest())
        keys.append(key)
        if key not in cache and key not in queued:
            queued.add(key)
            missing.append((key, name))
    held = contextlib.nullcontext()
    if missing and guard is not None:
        needed = predict.DECODE_BUDGET + memory.scoring_bytes(run.model, min(len(missing), SCORE_BATCH))
        held = guard.hold(f"Scoring {len(missing):,} image(s)", needed)
    with held:
        _score_missing(
            run, missing, {key: source for key, (_, source) in zip(keys, files, strict=True)}, cache, on_progress
        )
    _trim(cache, set(keys))
    # A file re-uploaded under another name keeps its cached scores but shows its own name.
    return [dataclasses.replace(cache[key], name=name) for key, (name, _) in zip(keys, files, strict=True)]


def table(results: list[Scored], thresholds: dict[str, float], label_names: tuple[str, ...]) -> pd.DataFrame:
    """One row per file: probabilities, predicted labels, and the error for refused files."""
    rows = []
    for result in results:
        row = {"file": result.name}
        row.update({label: (result.probabilities or {}).get(label, np.nan) for label in label_names})
        row["predicted"] = ", ".join(result.labels(thresholds)) or ("" if result.error else NONE_LABEL)
        row["error"] = result.error or ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["file", *label_names, "predicted", "error"])


def matches(result: Scored, shown: set[str], thresholds: dict[str, float]) -> bool:
    """Whether a result passes the filter ``shown`` (labels, ``NONE_LABEL``, or ``"refused"``)."""
    if result.error:
        return "refused" in shown
    labels = result.labels(thresholds)
    return bool(set(labels) & shown) if labels else NONE_LABEL in shown


def order(results: list[Scored], by: str | None) -> list[Scored]:
    """Results by descending probability of label ``by`` (refused files last), or as uploaded."""
    if by is None:
        return list(results)
    return sorted(results, key=lambda r: -(r.probabilities or {}).get(by, -1.0))
