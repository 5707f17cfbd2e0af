"""The training loop: compile, fit with live progress and a cooperative stop.

Progress is reported through a plain callable so the caller decides where it
goes (a terminal bar, a lock-protected object read by a UI); nothing here knows
about any UI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable

import keras
import numpy as np

from mlcore import runtime
from mlcore.config import WEIGHT_AVERAGE_DECAY, TrainConfig
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


def warmup_cosine(learning_rate: float, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from a tenth of ``learning_rate`` over the first 5% of steps,
    then cosine decay to 2% of it by the last step."""
    total_steps = max(1, int(total_steps))
    warmup = total_steps // 20
    return keras.optimizers.schedules.CosineDecay(
        learning_rate / 10,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.02,
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def compile_model(
    model: keras.Model,
    label_names: tuple[str, ...],
    learning_rate: float = 1e-3,
    *,
    total_steps: int | None = None,
) -> keras.Model:
    """Binary cross-entropy with multi-label metrics.

    Without ``total_steps``: Adam at a constant rate, as in the notebook. With it:
    AdamW (decoupled weight decay) on a warm-up + cosine schedule over that many steps.
    """
    if total_steps is None:
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    else:
        optimizer = keras.optimizers.AdamW(learning_rate=warmup_cosine(learning_rate, total_steps), weight_decay=1e-4)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=training_metrics(label_names))
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
    precision: str = "float32"  # the Keras dtype policy it was trained in


ProgressFn = Callable[[TrainProgress], None]


def _floats(logs: dict | None) -> dict[str, float]:
    return {key: float(np.asarray(value)) for key, value in (logs or {}).items()}


def recalibrate_batch_norm(model: keras.Model, images: np.ndarray, *, batch_size: int = 64) -> None:
    """Set every BatchNormalization layer's moving statistics to their average over ``images``.

    Moving averages start at mean 0 / variance 1 and need hundreds of steps to forget
    that start; after a short run they are far off and inference quality collapses
    although training went well. One extra forward pass fixes it: with momentum
    ``k / (k + 1)`` at batch ``k`` the update becomes an exact running average.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms or len(images) == 0:
        return
    momenta = [layer.momentum for layer in norms]
    try:
        for step, start in enumerate(range(0, len(images), batch_size)):
            for layer in norms:
                layer.momentum = step / (step + 1)
            model(images[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def batches(
    images: np.ndarray, targets: np.ndarray, batch_size: int, *, shuffle_seed: int | None = None, as_float: bool = False
):
    """A ``tf.data`` pipeline of ``(images, targets)`` batches gathered from the arrays.

    The pipeline holds only an index range: each batch is gathered from the arrays
    (in memory order) when it is needed, so the arrays are never copied into a
    tensor. With ``shuffle_seed`` the order is a new seeded permutation every epoch.
    ``as_float`` hands the images over as float32 (the network rescales either way),
    as the multi-worker loop needs.
    """
    import tensorflow as tf

    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    indices = tf.data.Dataset.range(len(images))
    if shuffle_seed is not None:
        indices = indices.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)

    image_dtype = np.dtype(np.float32) if as_float else images.dtype

    def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.sort(index)
        return images[index].astype(image_dtype, copy=False), targets[index].astype(np.float32)

    def load(index):
        x, y = tf.numpy_function(gather, [index], (tf.as_dtype(image_dtype), tf.float32), stateful=False)
        x.set_shape((None, *images.shape[1:]))
        y.set_shape((None, *targets.shape[1:]))
        return x, y

    # Under a multi-worker strategy each worker keeps its share of every global batch; the
    # seeded order is the same on every worker, so together they see each image once.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return indices.batch(batch_size).map(load).prefetch(2).with_options(options)


class WeightAverage(keras.callbacks.Callback):
    """An exponential moving average of the trainable weights: validated each epoch, kept at the end.

    After step ``t`` the average moves towards the weights by ``1 - m`` with
    ``m = min(decay, (1 + t) / (10 + t))``, TensorFlow's warm-up for averages: a short
    run is not pulled back towards its random start, as a plain ``decay`` (Keras'
    ``use_ema``) would pull it. Validation during ``fit`` sees the average (the raw
    weights come back for the next epoch), and when training ends, finished or
    stopped, the model keeps the average. Moving statistics of batch norm are not
    weights; :func:`recalibrate_batch_norm` recomputes them for the averaged weights.
    """

    def __init__(self, decay: float = 0.99):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        self.average: list[np.ndarray] = []
        self._raw: list[np.ndarray] | None = None

    def momentum(self, step: int) -> float:
        """The weight of the previous average after ``step`` updates (1-based)."""
        return min(self.decay, (1 + step) / (10 + step))

    def on_train_begin(self, logs=None):
        self.steps = 0
        self.average = [np.array(variable, dtype=np.float64) for variable in self.model.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        momentum = self.momentum(self.steps)
        for average, variable in zip(self.average, self.model.trainable_weights, strict=True):
            average *= momentum
            average += (1.0 - momentum) * np.asarray(variable)

    def _assign(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.model.trainable_weights, values, strict=True):
            variable.assign(value.astype(variable.dtype))

    def on_test_begin(self, logs=None):
        if self.steps:
            self._raw = [np.array(variable) for variable in self.model.trainable_weights]
            self._assign(self.average)

    def on_test_end(self, logs=None):
        if self._raw is not None:
            self._assign(self._raw)
            self._raw = None

    def on_train_end(self, logs=None):
        if self.steps:
            self._assign(self.average)


class _Reporter(keras.callbacks.Callback):
    """Forwards ``fit``'s running batch logs and its epoch logs, and stops on request.

    ``fit`` resets the metrics at the start of every epoch only, so the batch logs
    are the epoch's running values (loss: the batch-size-weighted mean so far; AUC:
    over every prediction so far) and the epoch logs are whole-epoch values, with
    the ``val_*`` ones computed over the whole validation split.
    """

    def __init__(
        self, report: Callable[[str, int, int, dict[str, float]], None], batches: int, stop: threading.Event | None
    ):
        super().__init__()
        self.report, self.batches, self.stop = report, batches, stop
        self.epoch = 0
        self.batch = 0
        self.history: dict[str, list[float]] = {}
        self.stopped = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.batch = epoch + 1, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batch += 1
        self.report("batch", self.epoch, self.batch, _floats(logs))
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            self.model.stop_training = True  # fit ends this epoch, validates it, and returns

    def on_epoch_end(self, epoch, logs=None):
        logs = _floats(logs)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.report("epoch", self.epoch, self.batches, logs)


def _progress(on_progress: ProgressFn | None, epochs: int, batch_count: int, started: float):
    """``report(kind, epoch, batch, logs)``: a :class:`TrainProgress` for ``on_progress``, if any."""

    def report(kind: str, epoch: int, batch: int, logs: dict[str, float]) -> None:
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            on_progress(TrainProgress(kind, epoch, epochs, batch, batch_count, logs, elapsed))

    return report


def fit(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    config: TrainConfig,
    *,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    weight_average: float | None = None,
) -> TrainResult:
    """Train a compiled model on uint8 images with ``model.fit``; stop cooperatively at the next batch.

    Batches come from :func:`batches` (a seeded new order every epoch). Every
    number reported is ``fit``'s own: per-epoch training metrics over the whole
    epoch, validation metrics over the whole validation split. An epoch cut short
    by ``stop`` is still validated and reported, and counts as completed. With
    ``weight_average`` (a decay), validation and the final model use a
    :class:`WeightAverage` of the weights.
    """
    x_train, y_train = train
    if len(x_train) == 0:
        raise ValueError("the training set is empty")
    if len(x_train) != len(y_train):
        raise ValueError(f"{len(x_train)} training images but {len(y_train)} targets")
    started = time.perf_counter()
    if stop is not None and stop.is_set():
        return TrainResult(model, {}, True, 0, 0.0)
    batch_count = int(np.ceil(len(x_train) / config.batch_size))

    reporter = _Reporter(_progress(on_progress, config.epochs, batch_count, started), batch_count, stop)
    validation_data = None
    if validation is not None and len(validation[0]) > 0:
        validation_data = batches(validation[0], validation[1], config.batch_size)
    model.fit(
        batches(x_train, y_train, config.batch_size, shuffle_seed=config.seed),
        epochs=config.epochs,
        validation_data=validation_data,
        callbacks=[reporter] if weight_average is None else [WeightAverage(weight_average), reporter],
        shuffle=False,
        verbose=0,
    )
    recalibrate_batch_norm(model, x_train)
    epochs_completed = len(next(iter(reporter.history.values()), []))
    return TrainResult(model, reporter.history, reporter.stopped, epochs_completed, time.perf_counter() - started)


def train_model(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    config: TrainConfig,
    label_names: tuple[str, ...],
    *,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    bfloat16: bool | None = None,
    strategy=None,
) -> TrainResult:
    """Build, compile and fit a fresh network for ``config``, seeded for repeatability.

    Trains in ``mixed_bfloat16`` where the CPU has native bfloat16 (``bfloat16=False``, or
    ``MLCORE_BFLOAT16=off``, keeps float32), and under ``strategy`` (a ``tf.distribute``
    strategy; ``config.batch_size`` is then the global batch, split across replicas).
    """
    runtime.configure_threads()
    keras.utils.set_random_seed(config.seed)
    x_train = train[0]
    policy = runtime.training_policy(bfloat16)

    def network() -> keras.Model:
        return build_model(
            tuple(x_train.shape[1:]),
            len(label_names),
            architecture=config.architecture,
            augmentation=config.augmentation,
            dtype_policy=policy,
        )

    with contextlib.nullcontext() if strategy is None else strategy.scope():
        model = network()
        # The notebook's network keeps the notebook's optimizer; the compact one is
        # trained as a small from-scratch CNN should be, on a schedule over the whole run,
        # and keeps an average of its weights (not under the multi-worker loop).
        total_steps = None
        if config.architecture == "compact":
            total_steps = int(np.ceil(len(x_train) / config.batch_size)) * config.epochs
        compile_model(model, label_names, config.learning_rate, total_steps=total_steps)
    if runtime.is_multi_worker(strategy):
        result = fit_multi_worker(model, train, validation, config, strategy, on_progress=on_progress, stop=stop)
        # Evaluation, prediction and saving run on one device: a plain copy of the trained weights.
        single = network()
        single.set_weights(model.get_weights())
        result.model = compile_model(single, label_names, config.learning_rate)
    else:
        result = fit(
            model,
            train,
            validation,
            config,
            on_progress=on_progress,
            stop=stop,
            weight_average=WEIGHT_AVERAGE_DECAY.get(config.architecture),
        )
    result.precision = policy
    return result


def fit_multi_worker(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    config: TrainConfig,
    strategy,
    *,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """The training loop under ``MultiWorkerMirroredStrategy``, written out.

    Keras 3's ``fit`` cannot run under that strategy (keras-team/keras#20585: it averages
    the first batch, and then each step's logs, with reductions the strategy refuses), so
    each step here is ``strategy.run`` on the worker's share of a global batch, gradients
    all-reduced by the optimizer. Every worker sees the same seeded order and keeps its
    share (:func:`batches`); the loss reported is the global batch's mean binary
    cross-entropy, summed over the workers, and ``val_loss`` the same over the validation split.
    """
    import tensorflow as tf

    x_train, y_train = train
    started = time.perf_counter()
    global_batch = config.batch_size
    batch_count = int(np.ceil(len(x_train) / global_batch))

    def replica_loss(x, y, training: bool):
        predictions = model(x, training=training)
        per_image = keras.losses.binary_crossentropy(y, tf.cast(predictions, tf.float32))
        return tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)

    @tf.function
    def train_step(x, y):
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = replica_loss(x, y, True)
            gradients = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply(gradients, model.trainable_variables)
            return loss

        return strategy.reduce("SUM", strategy.run(step, args=(x, y)), axis=None)

    @tf.function
    def test_step(x, y):
        return strategy.reduce("SUM", strategy.run(lambda x, y: replica_loss(x, y, False), args=(x, y)), axis=None)

    report = _progress(on_progress, config.epochs, batch_count, started)

    def mean_loss(dataset, step) -> float:
        losses = [float(step(x, y)) for x, y in strategy.experimental_distribute_dataset(dataset)]
        return float(np.mean(losses)) if losses else float("nan")

    shuffled = batches(x_train, y_train, global_batch, shuffle_seed=config.seed, as_float=True)
    history: dict[str, list[float]] = {}
    stopped = False
    for epoch in range(1, config.epochs + 1):
        losses = []
        for batch, (x, y) in enumerate(strategy.experimental_distribute_dataset(shuffled), start=1):
            losses.append(float(train_step(x, y)))
            report("batch", epoch, batch, {"loss": float(np.mean(losses))})
            if stop is not None and stop.is_set():
                stopped = True
                break
        logs = {"loss": float(np.mean(losses))}
        if validation is not None and len(validation[0]) > 0:
            logs["val_loss"] = mean_loss(batches(*validation, global_batch, as_float=True), test_step)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        report("epoch", epoch, batch_count, logs)
        if stopped:
            break
    return TrainResult(model, history, stopped, len(history.get("loss", [])), time.perf_counter() - started)


def weights_digest(model: keras.Model) -> str:
    """A short SHA-256 of every weight's bytes: equal on workers that trained in step."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]
