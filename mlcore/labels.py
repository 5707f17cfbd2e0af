"""Multi-label targets: dog/cat from the image's class plus a random ``indoor`` tag.

``indoor`` is deliberately random (the notebook's simulated environment tag): a
model that predicts it better than chance has found a leak, not a pattern.
"""

from __future__ import annotations

import hashlib

import numpy as np

from mlcore.config import LABELS, RANDOM_LABEL

# Folder names that mean one of our labels.
CLASS_ALIASES = {"dogs": "dog", "dog": "dog", "cats": "cat", "cat": "cat"}


def label_names(class_names: tuple[str, ...]) -> tuple[str, ...]:
    """Label columns for a dataset's classes: ``LABELS`` for cats/dogs, else the classes + indoor."""
    mapped = tuple(CLASS_ALIASES.get(name.lower(), name) for name in class_names)
    if set(mapped) == {"dog", "cat"}:
        return LABELS
    if RANDOM_LABEL in mapped:
        raise ValueError(f"a class folder may not be called {RANDOM_LABEL!r}: that label is simulated")
    return mapped + (RANDOM_LABEL,)


def uniform_per_key(keys: tuple[str, ...] | list[str], seed: int) -> np.ndarray:
    """One uniform number in [0, 1) per key, fixed by ``(seed, key)`` alone, not by order."""
    values = [
        int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little") for key in keys
    ]
    return np.array(values, dtype=np.float64) / 2.0**64


def make_targets(
    class_index: np.ndarray,
    class_names: tuple[str, ...],
    keys: tuple[str, ...] | list[str],
    *,
    indoor_probability: float,
    seed: int,
) -> np.ndarray:
    """Float32 targets of shape ``(n, len(label_names(class_names)))``.

    Class columns are one-hot; the last column is ``indoor ~ Bernoulli(p)``.
    Raising ``p`` only adds ``indoor`` tags, it never moves existing ones.
    """
    if not 0.0 <= indoor_probability <= 1.0:
        raise ValueError(f"indoor_probability must be between 0 and 1, got {indoor_probability}")
    class_index = np.asarray(class_index)
    if len(class_index) != len(keys):
        raise ValueError(f"{len(class_index)} class indices but {len(keys)} keys")
    names = label_names(class_names)
    mapped = [CLASS_ALIASES.get(name.lower(), name) for name in class_names]
    column_of_class = np.array([names.index(name) for name in mapped])
    targets = np.zeros((len(class_index), len(names)), dtype=np.float32)
    targets[np.arange(len(class_index)), column_of_class[class_index]] = 1.0
    targets[:, -1] = uniform_per_key(keys, seed) < indoor_probability
    return targets
