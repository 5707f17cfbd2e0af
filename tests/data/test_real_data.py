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
    return subprocess.run([sys.executable, "-m", "mlcore", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1400)


@pytest.fixture(scope="module")
def trained_bundle(real_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "seed.zip"
    result = _cli("train", "--source", "real", "--architecture", "seed", "--epochs", "5",
                  "--output", str(output), data_dir=real_data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result.stdout


def test_seed_network_beats_chance_on_dog_and_cat_but_not_indoor(trained_bundle):
    path, stdout = trained_bundle
    assert "split sizes {'train': 1800, 'validation': 200, 'test': 1000}" in stdout
    assert "Classification report on the test split (1000 images" in stdout
    for label in ("dog", "cat", "indoor"):
        assert f"Confusion matrix for {label}" in stdout
    with zipfile.ZipFile(path) as bundle:
        meta = json.loads(bundle.read("run.json"))
    auc = meta["test_metrics"]["roc_auc"]
    assert auc["dog"] > 0.65 and auc["cat"] > 0.65, auc
    assert 0.4 < auc["indoor"] < 0.6, auc
    report = meta["test_metrics"]["report"]
    assert report["dog"]["support"] == 500 and report["cat"]["support"] == 500
    assert meta["split_sizes"] == {"train": 1800, "validation": 200, "test": 1000}
    assert meta["synthetic_data"] is False


def test_predict_command_prints_three_probabilities(trained_bundle, real_data_dir):
    path, _ = trained_bundle
    image = real_data_dir / "cats_and_dogs_filtered" / "validation" / "dogs" / "dog.2000.jpg"
    result = _cli("predict", str(path), str(image), data_dir=real_data_dir)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{image}: dog=") and "cat=" in line and "indoor=" in line and "->" in line


def test_predict_reports_a_bad_file_and_still_predicts_the_good_one(trained_bundle, real_data_dir, tmp_path):
    path, _ = trained_bundle
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
