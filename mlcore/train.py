"""The training loop: compile, fit with live progress and a cooperative stop.

Progress is reported through a plain callable so the caller decides where it
goes (a terminal bar, a lock-protected object read by a UI); nothing here knows
about any UI.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

import keras
import numpy as np

from mlcore import runtime
from mlcore.config import TrainConfig
from mlcore.model import build_model


class _LabelSlice:
    """Mixin: apply a Keras metric to one label column only."""

    def __init__(self, label_index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.label_index = label_index

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(
            y_true[:, self.label_index], y_pred[:, self.label_index], sample_weight=sample_weight
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_index": self.label_index}


@keras.saving.register_keras_serializable(package="mlcore")
class LabelAUC(_LabelSlice, keras.metrics.AUC):
    """ROC-AUC of one label."""


@keras.saving.register_keras_serializable(package="mlcore")
class LabelPrecision(_LabelSlice, keras.metrics.Precision):
    """Precision of one label at 0.5."""


@keras.saving.register_keras_serializable(package="mlcore")
class LabelRecall(_LabelSlice, keras.metrics.Recall):
    """Recall of one label at 0.5."""


def training_metrics(label_names: tuple[str, ...]) -> list[keras.metrics.Metric]:
    """Binary accuracy and macro AUC overall, AUC/precision/recall per label.

    Plain ``accuracy`` is not used: for multi-label targets it measures the wrong thing.
    """
    metrics: list[keras.metrics.Metric] = [
        keras.metrics.BinaryAccuracy(name="binary_accuracy"),
        keras.metrics.AUC(multi_label=True, num_labels=len(label_names), name="auc"),
    ]
    for index, label in enumerate(label_names):
        metrics += [
            LabelAUC(label_index=index, name=f"auc_{label}"),
            LabelPrecision(label_index=index, name=f"precision_{label}"),
            LabelRecall(label_index=index, name=f"recall_{label}"),
        ]
    return metrics


def compile_model(model: keras.Model, label_names: tuple[str, ...], learning_rate: float = 1e-3) -> keras.Model:
    """Adam and binary cross-entropy, as in the notebook, with multi-label metrics."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=training_metrics(label_names),
    )
    return model


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    """One progress report. ``kind`` is ``"batch"`` or ``"epoch"``; counts are 1-based."""

    kind: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    logs: dict[str, float]
    elapsed: float


@dataclasses.dataclass
class TrainResult:
    """A trained (possibly stopped early) model and its per-epoch history."""

    model: keras.Model
    history: dict[str, list[float]]
    stopped: bool
    epochs_completed: int
    seconds: float


ProgressFn = Callable[[TrainProgress], None]


def _floats(logs: dict | None) -> dict[str, float]:
    return {key: float(np.asarray(value)) for key, value in (logs or {}).items()}


class _Reporter(keras.callbacks.Callback):
    """Forwards progress, records history and honours the stop flag between batches."""

    def __init__(self, epochs: int, batches: int, on_progress: ProgressFn | None, stop: threading.Event | None):
        super().__init__()
        self.epochs, self.batches = epochs, batches
        self.on_progress, self.stop = on_progress, stop
        self.history: dict[str, list[float]] = {}
        self.epoch = 0
        self.stopped = False
        self.started = time.perf_counter()

    def _report(self, kind: str, batch: int, logs: dict[str, float]) -> None:
        if self.on_progress is not None:
            elapsed = time.perf_counter() - self.started
            self.on_progress(TrainProgress(kind, self.epoch + 1, self.epochs, batch, self.batches, logs, elapsed))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._report("batch", batch + 1, _floats(logs))
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        values = _floats(logs)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        self._report("epoch", self.batches, values)


def recalibrate_batch_norm(model: keras.Model, images: np.ndarray, *, batch_size: int = 64) -> None:
    """Set every BatchNormalization layer's moving statistics to their average over ``images``.

    Moving averages start at mean 0 / variance 1 and need hundreds of steps to forget
    that start; after a short run they are far off and inference quality collapses
    although training went well. One extra forward pass fixes it: with momentum
    ``k / (k + 1)`` at batch ``k`` the update becomes an exact running average.
    """
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms or len(images) == 0:
        return
    momenta = [layer.momentum for layer in norms]
    try:
        for step, start in enumerate(range(0, len(images), batch_size)):
            for layer in norms:
                layer.momentum = step / (step + 1)
            model(images[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def fit(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    config: TrainConfig,
    *,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train a compiled model on uint8 images; stop cooperatively at the next batch."""
    x_train, y_train = train
    if len(x_train) == 0:
        raise ValueError("the training set is empty")
    if len(x_train) != len(y_train):
        raise ValueError(f"{len(x_train)} training images but {len(y_train)} targets")
    batches = int(np.ceil(len(x_train) / config.batch_size))
    reporter = _Reporter(config.epochs, batches, on_progress, stop)
    if stop is not None and stop.is_set():
        return TrainResult(model, {}, True, 0, 0.0)
    model.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation if validation is not None and len(validation[0]) else None,
        shuffle=True,
        callbacks=[reporter],
        verbose=0,
    )
    recalibrate_batch_norm(model, x_train)
    epochs_completed = len(next(iter(reporter.history.values()), []))
    return TrainResult(model, reporter.history, reporter.stopped, epochs_completed,
                       time.perf_counter() - reporter.started)


def train_model(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    config: TrainConfig,
    label_names: tuple[str, ...],
    *,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Build, compile and fit a fresh network for ``config``, seeded for repeatability."""
    runtime.configure_threads()
    keras.utils.set_random_seed(config.seed)
    x_train = train[0]
    model = build_model(
        tuple(x_train.shape[1:]), len(label_names),
        architecture=config.architecture, augmentation=config.augmentation,
    )
    compile_model(model, label_names, config.learning_rate)
    return fit(model, train, validation, config, on_progress=on_progress, stop=stop)
