"""The command line on the real dataset: the notebook's network, honestly evaluated."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(1500)
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLCORE_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mlcore", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1400
    )


@pytest.fixture(scope="module")
def trained_bundle(real_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "seed.zip"
    result = _cli(
        "train",
        "--source",
        "real",
        "--architecture",
        "seed",
        "--epochs",
        "5",
        "--output",
        str(output),
        data_dir=real_data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result.stdout, result.stderr


def test_seed_network_beats_chance_on_dog_and_cat_but_not_indoor(trained_bundle):
    path, stdout, _ = trained_bundle
    assert "split sizes {'train': 1800, 'validation': 200, 'test': 1000}" in stdout
    assert "Classification report on the test split (1000 images" in stdout
    for label in ("dog", "cat", "indoor"):
        assert f"Confusion matrix for {label}" in stdout
    with zipfile.ZipFile(path) as bundle:
        meta = json.loads(bundle.read("run.json"))
    auc = meta["test_metrics"]["roc_auc"]
    assert auc["dog"] > 0.65, auc
    assert auc["cat"] > 0.65, auc
    assert 0.4 < auc["indoor"] < 0.6, auc
    report = meta["test_metrics"]["report"]
    assert report["dog"]["support"] == 500
    assert report["cat"]["support"] == 500
    assert meta["split_sizes"] == {"train": 1800, "validation": 200, "test": 1000}
    assert meta["synthetic_data"] is False


def test_the_epoch_figures_are_whole_split_values_and_the_progress_line_shows_them(trained_bundle, real_data_dir):
    """The last epoch's validation figures equal numpy/sklearn on the final model's predictions
    over all 200 validation images (200 = 6 x 32 + 8: a last-batch value would be far off), the
    progress line prints them, and validation AUC sits near the 1,000-image test ROC-AUC."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from mlcore import datasets, predict, store
    from mlcore.config import DataConfig

    path, _, stderr = trained_bundle
    bundle = store.load_bundle(path)
    history = bundle.metadata["history"]
    splits = datasets.load_splits(DataConfig(source="real", data_dir=str(real_data_dir)))
    y_true, y_score = splits.validation.targets, predict.predict_proba(bundle.model, splits.validation.images)
    clipped = np.clip(y_score.astype(np.float64), 1e-7, 1 - 1e-7)
    bce = -np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped))
    assert history["val_loss"][-1] == pytest.approx(bce, abs=1e-4)
    test_auc = bundle.metadata["test_metrics"]["roc_auc"]
    for index, label in enumerate(bundle.label_names):
        assert history[f"val_auc_{label}"][-1] == pytest.approx(
            roc_auc_score(y_true[:, index], y_score[:, index]), abs=0.01
        )
    for label in ("dog", "cat"):
        assert abs(history[f"val_auc_{label}"][-1] - test_auc[label]) < 0.1, (label, history, test_auc)
    last_epoch = next(line for line in stderr.splitlines() if "Epoch 5/5" in line)
    assert f"val_loss={history['val_loss'][-1]:.4f}" in last_epoch
    assert f"loss={history['loss'][-1]:.4f}" in last_epoch
    assert f"val_auc={history['val_auc'][-1]:.4f}" in last_epoch


def test_predict_command_prints_three_probabilities(trained_bundle, real_data_dir):
    path, *_ = trained_bundle
    image = real_data_dir / "cats_and_dogs_filtered" / "validation" / "dogs" / "dog.2000.jpg"
    result = _cli("predict", str(path), str(image), data_dir=real_data_dir)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{image}: dog=")
    assert "cat=" in line
    assert "indoor=" in line
    assert "->" in line


def test_predict_reports_a_bad_file_and_still_predicts_the_good_one(trained_bundle, real_data_dir, tmp_path):
    path, *_ = trained_bundle
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    good = real_data_dir / "cats_and_dogs_filtered" / "validation" / "cats" / "cat.2000.jpg"
    result = _cli("predict", str(path), str(bad), str(good), data_dir=real_data_dir)
    assert result.returncode == 1
    assert f"{bad}: error: Not a supported image" in result.stderr
    assert f"{good}: dog=" in result.stdout


def test_notebook_protocol_reproduces_the_notebook_split(real_data_dir, tmp_path):
    result = _cli("train", "--protocol", "notebook", "--output", str(tmp_path / "nb.zip"), data_dir=real_data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    # 320 images, 80/20 split, then Keras' validation_split=0.1: 231 / 25 / 64.
    assert "split sizes {'train': 231, 'validation': 25, 'test': 64}" in result.stdout
    assert "Classification report on the test split (64 images, threshold 0.5)" in result.stdout
    assert "samples avg" in result.stdout
    assert "Epoch 5/5" in result.stderr
