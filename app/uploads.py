"""Scoring uploaded images: each file once per model, every bad file on its own.

Probabilities are cached per session by (run, file content), so reruns and
threshold changes only re-threshold; the decisions are made at render time.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app import runs, state
from mlcore import predict

THUMBNAIL_PIXELS = 320
MAX_CACHED = 48  # scored files kept per session (thumbnails included)


@dataclasses.dataclass(frozen=True, eq=False)
class Scored:
    """One uploaded file: its picture and probabilities, or the reason it was refused."""

    name: str
    image: Image.Image | None = None
    probabilities: dict[str, float] | None = None
    error: str | None = None

    def labels(self, thresholds: dict[str, float]) -> tuple[str, ...]:
        """Labels whose probability reaches their threshold."""
        return tuple(label for label, p in (self.probabilities or {}).items() if p >= thresholds[label])


def score(run: runs.Run, files: list[tuple[str, bytes]]) -> list[Scored]:
    """Score ``(name, bytes)`` files with ``run``'s model; decoded and predicted once each."""
    cache: dict = st.session_state[state.PREDICTIONS]
    for stale in [key for key in cache if key[0] != run.id]:  # another model's scores
        del cache[stale]
    keys = [(run.id, hashlib.sha256(data).hexdigest()) for _, data in files]
    fresh: list[tuple[tuple, str, Image.Image]] = []
    for key, (name, data) in zip(keys, files):
        if key in cache:
            continue
        try:
            image = predict.load_image(data)
        except predict.ImageError as error:
            cache[key] = Scored(name, error=str(error))
            continue
        fresh.append((key, name, image))
    if fresh:
        batch = np.stack([predict.to_model_input(image, run.image_size) for _, _, image in fresh])
        for (key, name, image), row in zip(fresh, predict.predict_proba(run.model, batch)):
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            cache[key] = Scored(name, image, {label: float(p) for label, p in zip(run.label_names, row)})
    while len(cache) > MAX_CACHED:
        cache.pop(next(iter(cache)))
    # A file re-uploaded under another name keeps its cached scores but shows its own name.
    return [dataclasses.replace(cache[key], name=name) for key, (name, _) in zip(keys, files)]


def table(results: list[Scored], thresholds: dict[str, float], label_names: tuple[str, ...]) -> pd.DataFrame:
    """One row per file: probabilities, predicted labels, and the error for refused files."""
    rows = []
    for result in results:
        row = {"file": result.name}
        row.update({label: (result.probabilities or {}).get(label, np.nan) for label in label_names})
        row["predicted"] = ", ".join(result.labels(thresholds)) or ("" if result.error else "none of the labels")
        row["error"] = result.error or ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["file", *label_names, "predicted", "error"])
