"""The compact network's average of weights, checked against numpy on the recorded raw weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mlcore import datasets, model, predict, train
from mlcore.config import DataConfig, TrainConfig

DECAY = 0.9
LABELS = ("dog", "cat", "indoor")
BATCH = 16


@pytest.fixture(scope="module")
def splits():
    return datasets.load_splits(DataConfig(source="demo", demo_images=120, image_size=32, seed=4))


def weights(network: keras.Model) -> list[np.ndarray]:
    return [np.array(variable, dtype=np.float64) for variable in network.trainable_weights]


class Recorder(keras.callbacks.Callback):
    """Runs after :class:`train.WeightAverage` in the same list: sees what it left in the model."""

    def __init__(self):
        super().__init__()
        self.start, self.after_batch, self.at_validation, self.at_epoch_end = None, [], [], []

    def on_train_begin(self, logs=None):
        self.start = weights(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.after_batch.append(weights(self.model))

    def on_test_begin(self, logs=None):
        self.at_validation.append(weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(weights(self.model))


def numpy_average(start: list[np.ndarray], steps: list[list[np.ndarray]], decay: float) -> list[np.ndarray]:
    average = [w.copy() for w in start]
    for t, raw in enumerate(steps, start=1):
        m = min(decay, (1 + t) / (10 + t))
        average = [m * a + (1 - m) * w for a, w in zip(average, raw, strict=True)]
    return average


def assert_weights_close(actual, expected, *, atol=1e-5):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-4)


def bce(y_true, y_score) -> float:
    clipped = np.clip(y_score.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped)))


def seed_network(splits) -> keras.Model:
    keras.utils.set_random_seed(7)
    network = model.build_model((32, 32, 3), 3, architecture="seed")
    return train.compile_model(network, splits.label_names, 1e-3)


def test_momentum_warms_up_then_holds_the_decay():
    average = train.WeightAverage(0.99)
    assert average.momentum(1) == pytest.approx(2 / 11)
    assert average.momentum(90) == pytest.approx(91 / 100)
    assert average.momentum(10_000) == 0.99
    with pytest.raises(ValueError, match="decay"):
        train.WeightAverage(1.0)


def test_validation_sees_the_average_training_goes_on_from_the_raw_weights(splits):
    network = seed_network(splits)
    recorder = Recorder()
    history = network.fit(
        train.batches(splits.train.images, splits.train.targets, BATCH, shuffle_seed=1),
        epochs=3,
        validation_data=train.batches(splits.validation.images, splits.validation.targets, BATCH),
        callbacks=[train.WeightAverage(DECAY), recorder],
        shuffle=False,
        verbose=0,
    ).history
    per_epoch = len(recorder.after_batch) // 3
    assert per_epoch == int(np.ceil(len(splits.train) / BATCH))
    for epoch in range(3):
        done = recorder.after_batch[: (epoch + 1) * per_epoch]
        # Validation ran on the average of every step so far ...
        assert_weights_close(recorder.at_validation[epoch], numpy_average(recorder.start, done, DECAY))
        # ... and the raw weights were back before the next epoch.
        assert_weights_close(recorder.at_epoch_end[epoch], done[-1], atol=0)
    final = numpy_average(recorder.start, recorder.after_batch, DECAY)
    assert_weights_close(weights(network), final)
    raw_distance = max(np.abs(a - b).max() for a, b in zip(final, recorder.after_batch[-1], strict=True))
    assert raw_distance > 1e-3, "the average must differ from the last raw weights for this test to mean anything"
    # The last val_loss is the averaged model's loss over the whole validation split.
    scores = predict.predict_proba(network, splits.validation.images)
    assert history["val_loss"][-1] == pytest.approx(bce(splits.validation.targets, scores), abs=1e-4)


def test_a_stopped_run_keeps_the_average_of_the_steps_it_took(splits):
    network = seed_network(splits)
    recorder = Recorder()

    class StopAfterTwo(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    network.fit(
        train.batches(splits.train.images, splits.train.targets, BATCH, shuffle_seed=1),
        epochs=3,
        callbacks=[train.WeightAverage(DECAY), recorder, StopAfterTwo()],
        shuffle=False,
        verbose=0,
    )
    assert len(recorder.after_batch) == 2
    expected = numpy_average(recorder.start, recorder.after_batch, DECAY)
    # Two steps in: the average leans on the newest weights (momentum 2/11, then 3/12), not the start.
    assert_weights_close(weights(network), expected)


def test_the_compact_network_keeps_the_average_and_the_seed_network_does_not(splits, monkeypatch):
    made = []

    class Spy(train.WeightAverage):
        def __init__(self, decay):
            super().__init__(decay)
            made.append(self)

    monkeypatch.setattr(train, "WeightAverage", Spy)
    data = (splits.train.images, splits.train.targets)
    compact = train.train_model(data, None, TrainConfig(architecture="compact", epochs=2, batch_size=BATCH), LABELS)
    assert len(made) == 1
    assert made[0].decay == 0.99
    assert made[0].steps == 2 * int(np.ceil(len(splits.train) / BATCH))
    assert_weights_close(weights(compact.model), made[0].average)
    train.train_model(data, None, TrainConfig(architecture="seed", epochs=1, batch_size=BATCH), LABELS)
    assert len(made) == 1
