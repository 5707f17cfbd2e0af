"""The command line chooses thresholds on the validation split and reports the test split."""

from __future__ import annotations

import pytest

from mlcore import cli, datasets, metrics, predict, store
from mlcore.config import DataConfig


def test_choose_thresholds_on_validation_and_report_the_test_split(tmp_path, capsys):
    output = tmp_path / "run.zip"
    code = cli.main(
        [
            "train",
            "--source",
            "demo",
            "--image-size",
            "48",
            "--epochs",
            "2",
            "--choose-thresholds",
            "precision:0.8",
            "--output",
            str(output),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0

    bundle = store.load_bundle(output)
    splits = datasets.load_splits(DataConfig(source="demo", image_size=48))
    validation = predict.predict_proba(bundle.model, splits.validation.images)
    chosen = metrics.choose_thresholds(
        splits.validation.targets, validation, rule="precision", target=0.8, labels=splits.label_names
    )
    expected = {label: value if value is not None else 0.5 for label, value in chosen.items()}
    assert bundle.thresholds == pytest.approx(expected)
    origin = metrics.threshold_origin("precision", split="validation", target=0.8)
    assert bundle.metadata["threshold_origin"] == {
        label: origin if chosen[label] is not None else metrics.threshold_origin("fixed") for label in chosen
    }
    assert "Thresholds, lowest threshold with precision ≥ 0.80 on the validation split: " in printed

    test = predict.predict_proba(bundle.model, splits.test.images)
    report = metrics.classification_report_frame(
        splits.test.targets, test, threshold=expected, labels=splits.label_names
    )
    assert bundle.metadata["test_metrics"]["report"]["dog"]["f1-score"] == pytest.approx(report.loc["dog", "f1-score"])
    assert f"test split ({len(test)} images, threshold dog {expected['dog']:.2f}" in printed


@pytest.mark.parametrize("rule", ["accuracy", "precision", "precision:1.5", "recall:x", "f1:0.5"])
def test_a_bad_threshold_rule_is_named(rule, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--source", "demo", "--choose-thresholds", rule])
    assert exit_info.value.code == 2
    assert f"expected f1, precision:T or recall:T with 0 < T <= 1, got {rule!r}" in capsys.readouterr().err


def test_the_installed_command_runs_the_same_command_line():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    command = shutil.which("mlcore", path=str(Path(sys.executable).parent))
    assert command, "pip install -e . (in requirements-dev.txt) installs the mlcore command beside python"
    result = subprocess.run([command, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: mlcore train")
    assert "--choose-thresholds RULE" in result.stdout
