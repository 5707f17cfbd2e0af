"""Every number training reports equals an independent computation of the same quantity.

Epoch figures must be whole-epoch and whole-split values, as ``model.fit`` and
``model.evaluate`` report them, never the last batch's. The checks recompute them
with numpy and scikit-learn from ``predict`` on the same images.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from mlcore import datasets, model, predict, train
from mlcore.config import DataConfig, TrainConfig

BATCH = 16


def binary_cross_entropy(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Keras' binary cross-entropy (probabilities clipped to [1e-7, 1 - 1e-7]), averaged over every entry."""
    clipped = np.clip(y_score.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped)))


@pytest.fixture(scope="module")
def splits():
    splits = datasets.load_splits(DataConfig(source="demo", demo_images=240, image_size=48, seed=5))
    # The last batch of each split is a partial one: a last-batch value would differ from the whole.
    assert len(splits.train) % BATCH
    assert len(splits.validation) % BATCH
    assert len(splits.validation) > BATCH
    return splits


@pytest.fixture(scope="module")
def trained(splits):
    events = []
    result = train.train_model(
        (splits.train.images, splits.train.targets),
        (splits.validation.images, splits.validation.targets),
        TrainConfig(architecture="seed", epochs=3, batch_size=BATCH, seed=3),
        splits.label_names,
        on_progress=events.append,
    )
    return result, events


def test_validation_metrics_are_computed_over_the_whole_validation_split(splits, trained):
    result, _ = trained
    y_true = splits.validation.targets
    # The seed network has no batch norm, so the final model is the one the last epoch validated.
    y_score = predict.predict_proba(result.model, splits.validation.images)
    history = result.history
    assert history["val_loss"][-1] == pytest.approx(binary_cross_entropy(y_true, y_score), abs=1e-4)
    assert history["val_binary_accuracy"][-1] == pytest.approx(np.mean((y_score > 0.5) == y_true), abs=1e-6)
    for index, label in enumerate(splits.label_names):
        column, scores = y_true[:, index], y_score[:, index]
        # Keras' AUC interpolates over 200 thresholds: the same algorithm over the whole split
        # gives the same number, and it is near the exact value (a last batch's would not be).
        whole = keras.metrics.AUC()
        whole.update_state(column, scores)
        assert history[f"val_auc_{label}"][-1] == pytest.approx(float(whole.result()), abs=1e-5)
        assert history[f"val_auc_{label}"][-1] == pytest.approx(roc_auc_score(column, scores), abs=0.05)
        decided = scores > 0.5
        assert history[f"val_precision_{label}"][-1] == pytest.approx(
            precision_score(column, decided, zero_division=0), abs=1e-6
        )
        assert history[f"val_recall_{label}"][-1] == pytest.approx(recall_score(column, decided), abs=1e-6)
    macro = np.mean([roc_auc_score(y_true[:, i], y_score[:, i]) for i in range(y_true.shape[1])])
    assert history["val_auc"][-1] == pytest.approx(macro, abs=0.01)


def test_epoch_logs_and_history_agree_and_batch_logs_run_within_the_epoch(trained):
    result, events = trained
    epochs = [event for event in events if event.kind == "epoch"]
    assert [event.epoch for event in epochs] == [1, 2, 3]
    for key, values in result.history.items():
        assert values == [event.logs[key] for event in epochs], key
    for epoch in epochs:
        batches = [event for event in events if event.kind == "batch" and event.epoch == epoch.epoch]
        assert [event.batch for event in batches] == list(range(1, epoch.batches + 1))
        # The running value after the epoch's last batch is the epoch's value.
        assert batches[-1].logs["loss"] == pytest.approx(epoch.logs["loss"], rel=1e-6)
        assert batches[-1].logs["auc"] == pytest.approx(epoch.logs["auc"], rel=1e-6)


def test_the_epochs_training_loss_is_the_size_weighted_mean_of_its_batch_losses(splits):
    """With the weights frozen (learning rate 0) every batch's loss is known in advance: the
    epoch's loss must be their mean weighted by batch size, which no single batch's loss is."""
    images, targets = splits.train.images, splits.train.targets
    network = model.build_model(images.shape[1:], len(splits.label_names), architecture="seed")
    train.compile_model(network, splits.label_names, learning_rate=1e-3)
    train.fit(network, (images, targets), None, TrainConfig(epochs=2, batch_size=BATCH, seed=4))  # away from 0.5
    train.compile_model(network, splits.label_names, learning_rate=0.0)
    result = train.fit(network, (images, targets), None, TrainConfig(epochs=1, batch_size=BATCH, seed=4))

    y_score = predict.predict_proba(network, images)
    starts = range(0, len(images), BATCH)
    batch_losses = [binary_cross_entropy(targets[s : s + BATCH], y_score[s : s + BATCH]) for s in starts]
    sizes = [len(targets[s : s + BATCH]) for s in starts]
    assert sizes[-1] < BATCH
    weighted = float(np.average(batch_losses, weights=sizes))
    assert result.history["loss"][0] == pytest.approx(weighted, abs=1e-4)
    assert np.ptp(batch_losses) > 0.02, "batches differ, so one batch's loss would give another number"
    macro = np.mean([roc_auc_score(targets[:, i], y_score[:, i]) for i in range(targets.shape[1])])
    assert result.history["auc"][0] == pytest.approx(macro, abs=0.01), "AUC over all of the epoch's predictions"


def test_training_order_is_seeded(splits):
    def losses(seed: int) -> list[float]:
        result = train.train_model(
            (splits.train.images, splits.train.targets),
            None,
            TrainConfig(architecture="seed", epochs=2, batch_size=BATCH, seed=seed),
            splits.label_names,
        )
        return result.history["loss"]

    first = losses(7)
    assert losses(7) == pytest.approx(first, abs=1e-6)
