"""Cached data loaders, keyed on the frozen :class:`DataConfig`.

The decoded splits live in ``st.cache_resource``: shared, never copied, and
read-only so no session can change them for another. Their images stay on disk
(``mlcore.arrays``): a split is an index array, read a batch at a time.
``st.cache_data`` would pickle them on every rerun. What the Data page shows is
small and lives in ``st.cache_data``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from mlcore import datasets
from mlcore.config import DataConfig
from mlcore.datasets import DatasetUnavailable, Splits

SAMPLE_COUNT = 16


def real_dataset_path(config: DataConfig) -> Path | None:
    """The local copy of the real dataset, if any (cheap: a few ``is_dir`` checks)."""
    return datasets.find_real_dataset(config.data_dir)


def _freeze(splits: Splits) -> Splits:
    for split in (splits.train, splits.validation, splits.test):
        split.targets.flags.writeable = False  # images are views that only ever hand out fresh arrays
    return splits


@st.cache_resource(max_entries=3, show_spinner="Loading and labelling images…")
def _load_splits(config: DataConfig) -> Splits:
    return _freeze(datasets.load_splits(config))


def load_splits(config: DataConfig) -> Splits:
    """The config's splits, shared by all sessions. Never downloads: for the real
    source without a local copy it raises :class:`DatasetUnavailable`."""
    if config.source == "real" and real_dataset_path(config) is None:
        raise DatasetUnavailable(
            "The real cats_and_dogs_filtered dataset is not on this machine yet. "
            "Download it on the Data page, or switch to the demo set."
        )
    if config.source == "zip" and not Path(config.archive).is_file():  # checked first: the cache may still hold it
        raise DatasetUnavailable(
            f"The zip {Path(config.archive).name} is no longer on the server: an uploaded zip is kept only while "
            "the browser session that uploaded it lasts. Upload it again on the Data page."
        )
    return _load_splits(config)


@dataclasses.dataclass(frozen=True)
class DataOverview:
    """What the Data page and sidebar show about a loaded config."""

    sizes: dict[str, int]
    label_counts: pd.DataFrame
    samples: list[np.ndarray]
    captions: list[str]
    label_names: tuple[str, ...]
    synthetic: bool
    origin: str
    skipped_files: tuple[str, ...]
    findings: tuple[datasets.Finding, ...] = ()
    annotated: bool = False


def tags(targets: np.ndarray, label_names: tuple[str, ...]) -> str:
    """``"dog · indoor"`` for a multi-hot row; ``"no labels"`` when empty."""
    return " · ".join(name for name, value in zip(label_names, targets, strict=True) if value) or "no labels"


@st.cache_data(max_entries=16, show_spinner=False)
def data_overview(config: DataConfig) -> DataOverview:
    """Sizes, per-label counts and a seeded sample of training images with their tags."""
    splits = load_splits(config)
    parts = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    counts = pd.DataFrame(
        {name: part.targets.sum(axis=0).astype(int) for name, part in parts.items()}, index=splits.label_names
    ).T
    rng = np.random.default_rng(config.seed)
    chosen = np.sort(rng.choice(len(splits.train), size=min(SAMPLE_COUNT, len(splits.train)), replace=False))
    return DataOverview(
        sizes=splits.sizes(),
        label_counts=counts,
        samples=[np.array(splits.train.images[i]) for i in chosen],
        captions=[tags(splits.train.targets[i], splits.label_names) for i in chosen],
        label_names=splits.label_names,
        synthetic=splits.synthetic,
        origin=splits.origin,
        skipped_files=splits.skipped_files,
        findings=splits.findings,
        annotated=splits.annotated,
    )


@st.cache_data(max_entries=16, show_spinner=False)
def has_annotations(config: DataConfig) -> bool:
    """Whether the config's folder or zip takes its labels from labels.csv."""
    return datasets.has_annotations(config)
