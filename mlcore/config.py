"""One source of truth for label names, defaults and the frozen configs.

The same frozen dataclasses drive the command line, the app and the cache keys,
so two equal configs always mean the same data and the same training run.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

LABELS: tuple[str, ...] = ("dog", "cat", "indoor")
RANDOM_LABEL = "indoor"

DATASET_NAME = "cats_and_dogs_filtered"
DATASET_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
DATASET_ARCHIVE_BYTES = 68_606_236
# Expected number of JPEGs per split and class once the archive is extracted.
DATASET_COUNTS = {"train": {"cats": 1000, "dogs": 1000}, "validation": {"cats": 500, "dogs": 500}}

SOURCES = ("real", "folder", "zip", "demo")
ARCHITECTURES = ("seed", "compact")
# Architectures trained keeping a moving average of their weights, and its decay (about the last
# 100 steps: 1.6 epochs of 2,000 images in batches of 32).
WEIGHT_AVERAGE_DECAY = {"compact": 0.99}

DATA_DIR_ENV = "MLCORE_DATA_DIR"
CACHE_DIR_ENV = "MLCORE_CACHE_DIR"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to load and how to label it.

    ``n_images`` limits the training pool (stratified, seeded); ``None`` takes all.
    ``test_fraction`` only applies to sources without an official held-out split.
    ``archive`` is the zip of the ``zip`` source. For data labelled by a labels.csv,
    ``add_indoor`` adds the random tag (class folders always get it) and
    ``drop_rare_labels`` drops labels seen on too few images to be split and judged.
    """

    source: str = "real"
    data_dir: str | None = None
    folder: str | None = None
    archive: str | None = None
    image_size: int = 128
    n_images: int | None = None
    indoor_probability: float = 0.5
    seed: int = 42
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    demo_images: int = 800
    add_indoor: bool = False
    drop_rare_labels: bool = True

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "folder" and not self.folder:
            raise ValueError("source='folder' needs a folder path")
        if self.source == "zip" and not self.archive:
            raise ValueError("source='zip' needs the zip file's path")
        if not 16 <= self.image_size <= 512:
            raise ValueError(f"image_size must be between 16 and 512, got {self.image_size}")
        if self.n_images is not None and self.n_images < 4:
            raise ValueError(f"n_images must be at least 4 (or None for all), got {self.n_images}")
        if not 0.0 <= self.indoor_probability <= 1.0:
            raise ValueError(f"indoor_probability must be between 0 and 1, got {self.indoor_probability}")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.9:
                raise ValueError(f"{name} must be in [0, 0.9), got {value}")
        if not 8 <= self.demo_images <= 100_000:
            raise ValueError(f"demo_images must be between 8 and 100,000, got {self.demo_images}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. ``augmentation`` only applies to the ``compact`` network."""

    architecture: str = "seed"
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    augmentation: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not 1 <= self.epochs <= 500:
            raise ValueError(f"epochs must be between 1 and 500, got {self.epochs}")
        if not 1 <= self.batch_size <= 1024:
            raise ValueError(f"batch_size must be between 1 and 1024, got {self.batch_size}")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")


def to_dict(config: DataConfig | TrainConfig) -> dict:
    """Plain-JSON form of a config, for run bundles and logs."""
    return dataclasses.asdict(config)


def default_data_dir() -> Path | None:
    """The data directory named by ``MLCORE_DATA_DIR``, if any."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def keras_home() -> Path:
    """Keras' own cache root, honouring ``KERAS_HOME`` as Keras does."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()


def cache_dir() -> Path:
    """Where decoded arrays are cached (``MLCORE_CACHE_DIR`` or ``~/.cache/mlcore``)."""
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mlcore"
