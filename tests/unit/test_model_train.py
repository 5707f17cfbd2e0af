import threading

import keras
import numpy as np
import pytest

from mlcore import datasets, model, predict, train
from mlcore.config import DataConfig, TrainConfig

LABELS = ("dog", "cat", "indoor")


def test_seed_architecture_matches_the_notebook():
    network = model.build_model((128, 128, 3), 3, architecture="seed")
    kinds = [type(layer).__name__ for layer in network.layers]
    assert kinds == [
        "InputLayer",
        "Rescaling",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    # Notebook: 896 + 18,496 + 7,372,928 + 387 (Rescaling has no weights).
    assert network.count_params() == 7_392_707
    assert network.output_shape == (None, 3)
    assert network.layers[-1].activation.__name__ == "sigmoid"


def test_compact_network_is_small_and_takes_uint8():
    network = model.build_model((64, 64, 3), 3, architecture="compact")
    # Stem 32 filters, residual blocks of 64, 128 and 256: a sixth of the seed network's weights.
    assert network.count_params() == 1_211_363
    kinds = {type(layer).__name__ for layer in network.layers}
    assert "SeparableConv2D" not in kinds
    assert "Flatten" not in kinds
    assert network.get_layer("pool").output.shape == (None, 256)
    probabilities = predict.predict_proba(network, np.zeros((2, 64, 64, 3), np.uint8))
    assert probabilities.shape == (2, 3)
    assert np.all((probabilities > 0) & (probabilities < 1))


def test_bad_architecture_is_named():
    with pytest.raises(ValueError, match="'resnet'"):
        model.build_model(architecture="resnet")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


@pytest.fixture(scope="module")
def demo_splits():
    return datasets.load_splits(DataConfig(source="demo", demo_images=240, image_size=48, indoor_probability=0.5))


def test_loss_falls_and_metrics_are_multilabel(demo_splits):
    events = []
    result = train.train_model(
        (demo_splits.train.images, demo_splits.train.targets),
        (demo_splits.validation.images, demo_splits.validation.targets),
        TrainConfig(architecture="seed", epochs=8, batch_size=32, seed=1),
        demo_splits.label_names,
        on_progress=events.append,
    )
    loss = result.history["loss"]
    assert result.epochs_completed == 8
    assert not result.stopped
    assert loss[-1] < loss[0] * 0.85
    for key in (
        "binary_accuracy",
        "auc",
        "val_loss",
        "val_auc",
        "auc_dog",
        "precision_cat",
        "recall_indoor",
        "val_auc_cat",
    ):
        assert key in result.history, key
    assert "accuracy" not in result.history
    epoch_events = [e for e in events if e.kind == "epoch"]
    batch_events = [e for e in events if e.kind == "batch"]
    assert [e.epoch for e in epoch_events] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(batch_events) == 8 * epoch_events[0].batches
    assert batch_events[-1].batch == batch_events[-1].batches
    probabilities = predict.predict_proba(result.model, demo_splits.test.images)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(demo_splits.test.targets[:, 0], probabilities[:, 0]) > 0.8


def test_stop_takes_effect_at_the_next_batch(demo_splits):
    stop = threading.Event()
    seen = []

    def on_progress(event):
        seen.append(event)
        if event.kind == "batch" and event.epoch == 1 and event.batch == 2:
            stop.set()

    result = train.train_model(
        (demo_splits.train.images, demo_splits.train.targets),
        None,
        TrainConfig(epochs=5, batch_size=16),
        demo_splits.label_names,
        on_progress=on_progress,
        stop=stop,
    )
    assert result.stopped
    assert result.epochs_completed == 1
    assert max(e.batch for e in seen if e.kind == "batch") == 2
    assert predict.predict_proba(result.model, demo_splits.test.images[:3]).shape == (3, 3)


def test_compact_network_generalises_after_a_short_run(demo_splits):
    """Batch-norm statistics are recalibrated, so a short run predicts well at inference."""
    from sklearn.metrics import roc_auc_score

    result = train.train_model(
        (demo_splits.train.images, demo_splits.train.targets),
        None,
        TrainConfig(architecture="compact", epochs=5, learning_rate=3e-3, seed=2),
        demo_splits.label_names,
    )
    probabilities = predict.predict_proba(result.model, demo_splits.test.images)
    for column in (0, 1):
        assert roc_auc_score(demo_splits.test.targets[:, column], probabilities[:, column]) > 0.9


def test_batch_norm_recalibration_reaches_every_batch_norm_layer():
    network = model.build_model((32, 32, 3), 3, architecture="compact")
    norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 10  # stem, and shortcut + two convolutions in each of three blocks
    images = np.random.default_rng(0).integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    train.recalibrate_batch_norm(network, images, batch_size=16)
    for layer in norms:
        assert not np.allclose(np.asarray(layer.moving_variance), 1.0), layer.name
        assert layer.momentum == pytest.approx(0.9), "the training momentum is restored"
