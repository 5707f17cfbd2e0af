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


@pytest.fixture
def chromium():
    """The system Chromium; without it the load test skips locally and fails in CI, like the browser tests."""
    from scripts.app_server import chromium_path

    if chromium_path() is None:
        message = "no system Chromium found (install Debian's 'chromium' package or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(f"the load test must run in CI, but {message}")
        pytest.skip(message)


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("chromium")
def test_load_test_drives_two_real_browser_sessions_and_measures_the_server(real_data_dir, tmp_path):
    """The smallest load test: the latencies are not judged, only that two sessions did the real
    work (trained, moved a threshold, uploaded photos) with no error and the server was measured."""
    out = tmp_path / "load.json"
    env = {**os.environ, "MLCORE_DATA_DIR": str(real_data_dir), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "benchmarks.load", "--sessions", "2", "--steps", "1", "--deadline", "150"]
    completed = subprocess.run(
        [*command, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    (row,) = results["rows"]
    assert row["sessions_requested"] == row["sessions"] == 2
    assert row["errors"] == 0, row["error_notes"]
    assert row["cut_short"] == 0, row
    assert row["interactions"] > 0
    assert row["p95_ms"] >= row["p50_ms"] > 0
    assert row["peak_rss_mb"] > 100
    # Both sessions trained, then used their model: a threshold move and an upload each.
    assert len(row["training_seconds"]) == 2, row
    counts = {action: stats["count"] for action, stats in row["by_action"].items()}
    assert counts.get("move threshold") == counts.get("upload photos") == 2, counts
    assert "| 2 | 2 |" in completed.stdout
