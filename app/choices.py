"""What the Data and Train forms offer. The forms draw these choices, and a setup that
arrives in an address is checked against them: a form must be able to show every
value the session holds (a value outside a widget's range would break its page).
"""

from __future__ import annotations

from mlcore.config import DataConfig, TrainConfig

IMAGE_SIZES = (32, 48, 64, 96, 128, 160)
MIN_IMAGES, MAX_IMAGES = 8, 10_000
MAX_SEED = 2**31 - 1
BATCH_SIZES = (8, 16, 32, 64, 128)
MAX_EPOCHS = 100
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2)
FIXED_DATA_FIELDS = ("data_dir", "validation_fraction", "test_fraction")  # no form changes them


def _outside(value: int | None, low: int, high: int) -> bool:
    return value is not None and not low <= value <= high


def data_problem(config: DataConfig) -> str | None:
    """Why the Data form could not show ``config``, or ``None`` when it can."""
    default = DataConfig()
    if config.image_size not in IMAGE_SIZES:
        return f"image size {config.image_size} is not one of {', '.join(map(str, IMAGE_SIZES))}"
    if _outside(config.n_images, MIN_IMAGES, MAX_IMAGES) or _outside(config.demo_images, MIN_IMAGES, MAX_IMAGES):
        return f"the number of images must be between {MIN_IMAGES:,} and {MAX_IMAGES:,}"
    if _outside(config.seed, 0, MAX_SEED):
        return f"the seed must be between 0 and {MAX_SEED:,}"
    changed = [name for name in FIXED_DATA_FIELDS if getattr(config, name) != getattr(default, name)]
    return f"{', '.join(changed)} cannot be set from an address" if changed else None


def train_problem(config: TrainConfig) -> str | None:
    """Why the Train form could not show ``config``, or ``None`` when it can."""
    if config.epochs > MAX_EPOCHS:
        return f"epochs must be at most {MAX_EPOCHS}"
    if config.batch_size not in BATCH_SIZES:
        return f"batch size {config.batch_size} is not one of {', '.join(map(str, BATCH_SIZES))}"
    if config.learning_rate not in LEARNING_RATES:
        return f"learning rate {config.learning_rate:g} is not one of {', '.join(f'{v:g}' for v in LEARNING_RATES)}"
    if _outside(config.seed, 0, MAX_SEED):
        return f"the seed must be between 0 and {MAX_SEED:,}"
    return None
