"""Dataset loading: all 3,000 real JPEGs decoded and resized to 128x128 uint8.

    python -m benchmarks.loading --data-dir DIR --cache-dir EMPTY_DIR --warm 5

The first load finds ``--cache-dir`` empty (cold: decode, resize, write the disk
cache); the next ``--warm`` loads hit the disk cache. The baseline,
``image_dataset_from_directory``, is in :mod:`benchmarks.baseline`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--warm", type=int, default=5)
    args = parser.parse_args()
    os.environ["MLCORE_CACHE_DIR"] = str(args.cache_dir)
    from mlcore import datasets

    root = args.data_dir / "cats_and_dogs_filtered"

    def load_all() -> int:
        return sum(len(datasets.load_folder(root / split, 128)) for split in ("train", "validation"))

    started = time.perf_counter()
    images = load_all()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(args.warm):
        started = time.perf_counter()
        assert load_all() == images
        warm.append(time.perf_counter() - started)
    emit({"images": images, "cold_seconds": cold, "warm_seconds": warm})


if __name__ == "__main__":
    main()
