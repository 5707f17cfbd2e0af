"""Training with mlcore on the real data, as the app and the command line train.

    python -m benchmarks.training --data-dir DIR --architecture seed --epochs 5

One process loads the full real dataset (all 3,000 images, through the disk
cache), trains on the 2,000 ``train/`` images with batch 32 through
``mlcore.train.train_model`` (per-label metrics and progress reports included),
then scores the 1,000 ``validation/`` images. It reports per-epoch seconds,
per-label F1 and ROC-AUC, and the process's peak RSS, which is the memory figure.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from benchmarks.common import emit, peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--architecture", default="seed")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from benchmarks.scoring import label_scores
    from mlcore import datasets, predict, train
    from mlcore.config import LABELS, TrainConfig
    from mlcore.labels import make_targets

    started = time.perf_counter()
    root = datasets.resolve_real_dataset(args.data_dir, download=False)
    sets = {split: datasets.load_folder(root / split, args.image_size) for split in ("train", "validation")}
    targets = {
        split: make_targets(s.class_index, s.class_names, s.keys, indoor_probability=0.5, seed=args.seed)
        for split, s in sets.items()
    }
    load_seconds = time.perf_counter() - started

    epoch_ends: list[float] = []

    def on_progress(progress: train.TrainProgress) -> None:
        if progress.kind == "epoch":
            epoch_ends.append(progress.elapsed)

    config = TrainConfig(
        architecture=args.architecture,
        epochs=args.epochs,
        batch_size=32,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    result = train.train_model(
        (sets["train"].images, targets["train"]),
        None,
        config,
        LABELS,
        on_progress=on_progress,
    )
    started = time.perf_counter()
    probabilities = predict.predict_proba(result.model, sets["validation"].images)
    predict_seconds = time.perf_counter() - started
    emit(
        {
            "pipeline": "mlcore",
            "architecture": args.architecture,
            "epochs": args.epochs,
            "image_size": args.image_size,
            "learning_rate": args.learning_rate,
            "train_images": len(targets["train"]),
            "load_seconds": round(load_seconds, 2),
            "epoch_seconds": [round(b - a, 2) for a, b in itertools.pairwise([0.0, *epoch_ends])],
            "train_seconds": round(result.seconds, 1),
            "predict_seconds": round(predict_seconds, 2),
            "scores": label_scores(targets["validation"], probabilities, LABELS),
            "peak_rss_mb": round(peak_rss_mb()),
        }
    )


if __name__ == "__main__":
    main()
