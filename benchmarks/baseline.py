"""The reference notebook's own pipeline, re-created as the baseline.

``image_dataset_from_directory`` at 128x128, a Python loop that divides every
image by 255 into float32 arrays, the notebook's Sequential network compiled with
Adam, binary cross-entropy and ``accuracy``, and ``model.fit`` on those arrays.
It deliberately imports nothing from mlcore (importing mlcore changes a
TensorFlow setting), so it runs with TensorFlow's defaults, as the notebook does.

    python -m benchmarks.baseline train --data-dir DIR --epochs 5
    python -m benchmarks.baseline load --data-dir DIR
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit, peak_rss_mb

IMAGE_SIZE = (128, 128)
BATCH_SIZE = 32
LABEL_MAP = {"dogs": [1, 0, 0], "cats": [0, 1, 0]}


def directory_dataset(folder: Path, *, shuffle: bool, seed: int | None = None):
    """The notebook's loader: ``image_dataset_from_directory`` at its image and batch size."""
    import tensorflow as tf

    return tf.keras.preprocessing.image_dataset_from_directory(
        str(folder), image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, shuffle=shuffle, seed=seed, verbose=False
    )


def notebook_arrays(folder: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's preprocessing cell, over every batch instead of ``take(10)``."""
    dataset = directory_dataset(folder, shuffle=True, seed=seed)
    class_names = dataset.class_names
    chooser = random.Random(seed)
    x, y = [], []
    for images, labels in dataset:
        for i in range(len(images)):
            img = images[i].numpy()
            label = list(LABEL_MAP[class_names[int(labels[i].numpy())]])
            label[2] = chooser.choice([0, 1])
            x.append(img / 255.0)
            y.append(label)
    return np.array(x, dtype=np.float32), np.array(y, dtype=np.float32)


def notebook_model():
    from tensorflow.keras import layers, models

    return models.Sequential(
        [
            layers.Input(shape=(*IMAGE_SIZE, 3)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(3, activation="sigmoid"),
        ]
    )


def load_uint8(folder: Path) -> np.ndarray:
    """Every image under ``folder`` decoded and resized to 128x128 uint8, the Keras way."""
    dataset = directory_dataset(folder, shuffle=False)
    return np.concatenate([images.numpy().astype(np.uint8) for images, _ in dataset])


def train(data_dir: Path, epochs: int, seed: int) -> dict:
    import keras

    from benchmarks.scoring import label_scores

    keras.utils.set_random_seed(seed)
    root = data_dir / "cats_and_dogs_filtered"
    started = time.perf_counter()
    x_train, y_train = notebook_arrays(root / "train", seed)
    x_test, y_test = notebook_arrays(root / "validation", seed + 1)
    prepare_seconds = time.perf_counter() - started

    model = notebook_model()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    model.fit(x_train, y_train, epochs=epochs, batch_size=BATCH_SIZE, callbacks=[EpochTimer()], verbose=0)
    probabilities = np.asarray(model.predict(x_test, batch_size=BATCH_SIZE, verbose=0))
    return {
        "pipeline": "notebook",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(TensorFlow default)"),
        "train_images": len(x_train),
        "prepare_seconds": round(prepare_seconds, 2),
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "scores": label_scores(y_test, probabilities, ("dog", "cat", "indoor")),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=("train", "load"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.task == "train":
        emit(train(args.data_dir, args.epochs, args.seed))
        return
    root = args.data_dir / "cats_and_dogs_filtered"
    started = time.perf_counter()
    images = [load_uint8(root / split) for split in ("train", "validation")]
    emit({"seconds": time.perf_counter() - started, "images": sum(len(part) for part in images)})


if __name__ == "__main__":
    main()
