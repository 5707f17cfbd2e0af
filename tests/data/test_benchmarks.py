"""The benchmark suite runs end to end on the real data and reports what it measured.

A quick run (``--quick``) of the cheaper steps: the numbers are not judged here
(tests never assert wall-clock times), only that each figure is measured, beside
its baseline, from real work with the expected sizes and outcomes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(1200)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_results(real_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    env = {**os.environ, "MLCORE_DATA_DIR": str(real_data_dir), "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "loading",
            "interaction",
            "prediction",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out.with_name("results.json").read_text()), out.read_text()


def test_loading_compares_cold_warm_and_keras_on_all_3000_images(quick_results):
    results, _ = quick_results
    (baseline,), (ours,) = results["loading"]["baseline"], results["loading"]["ours"]
    assert baseline["images"] == ours["images"] == 3000
    assert len(ours["warm_seconds"]) == 2
    assert ours["cold_seconds"] > 0
    assert baseline["seconds"] > 0


def test_threshold_moves_rescore_1000_test_images_without_calling_the_model(quick_results):
    results, _ = quick_results
    interaction = results["interaction"]
    assert interaction["test_images"] == 1000
    assert interaction["model_calls"] == 0
    assert len(interaction["rerun_ms"]) == 4
    # The per-label sliders follow the global one: the last value set is what the page shows.
    assert interaction["dog_threshold_after"] == pytest.approx(interaction["last_value"])


def test_prediction_is_timed_beside_model_predict_on_a_500x375_photo(quick_results):
    results, markdown = quick_results
    assert results["prediction"]["image"].startswith("dog.")
    assert results["prediction"]["ours_ms"] > 0
    assert results["prediction"]["model_predict_ms"] > 0
    assert results["prediction"]["gradcam_seed_ms"] > 0
    assert results["prediction"]["gradcam_compact_ms"] > 0
    assert "Grad-CAM overlay for that photo" in markdown
    assert "## Machine" in markdown
    assert "single prediction" in markdown
    assert "Quick run" in markdown
