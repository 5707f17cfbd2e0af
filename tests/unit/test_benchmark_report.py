"""The benchmark report: medians, ratios and the met/missed verdicts from raw results."""

import pytest

from benchmarks import report


def _run(epoch_seconds, dog, cat, indoor_auc, rss, images=2000, train_seconds=100.0):
    return {
        "train_images": images,
        "epoch_seconds": epoch_seconds,
        "train_seconds": train_seconds,
        "peak_rss_mb": rss,
        "epochs": len(epoch_seconds),
        "image_size": 96,
        "scores": {
            "dog": {"f1": dog, "auc": 0.8},
            "cat": {"f1": cat, "auc": 0.8},
            "indoor": {"f1": 0.5, "auc": indoor_auc},
        },
    }


def _results():
    return {
        "loading": {
            "baseline": [
                {"seconds": 9.0, "images": 3000},
                {"seconds": 7.0, "images": 3000},
                {"seconds": 8.0, "images": 3000},
            ],
            "ours": [
                {"cold_seconds": 4.0, "warm_seconds": [0.2, 0.5]},
                {"cold_seconds": 5.0, "warm_seconds": [0.1, 0.2]},
                {"cold_seconds": 3.0, "warm_seconds": [0.2, 0.3]},
            ],
        },
        "training": {
            "notebook": [
                _run([60, 40, 40, 40, 40], 0.70, 0.66, 0.51, 2100),
                _run([50, 40, 40, 80, 80], 0.72, 0.60, 0.50, 2000),
            ],
            "ours": [
                _run([30, 20, 25, 20, 20], 0.69, 0.67, 0.62, 1400),
                _run([30, 20, 20, 20, 25], 0.71, 0.65, 0.48, 1450),
            ],
            "notebook_onednn": [_run([30, 25, 25, 25, 25], 0.7, 0.66, 0.5, 2000)],
        },
        "interaction": {"test_images": 1000, "median_ms": 120.0, "model_calls": 1, "rerun_ms": [120.0]},
        "prediction": {
            "image": "dog.1.jpg",
            "ours_ms": 12.0,
            "model_predict_ms": 60.0,
            "decode_resize_ms": 3.0,
            "gradcam_seed_ms": 70.0,
            "gradcam_compact_ms": 20.0,
            "overlay_ms": 25.0,
            "repeats": 8,
        },
        "accuracy": _run([20] * 30, 0.86, 0.84, 0.49, 1200, train_seconds=610.0),
    }


def _rows():
    return {row["figure"].split(" (")[0].split(":")[0]: row for row in report.summarize(_results())}


def test_throughput_leaves_out_the_first_epoch_and_takes_the_median():
    assert report.throughput(_run([60, 40, 50, 40, 45], 0, 0, 0.5, 0)) == pytest.approx(2000 / 42.5)
    assert report.throughput(_run([60], 0, 0, 0.5, 0)) == pytest.approx(2000 / 60)


def test_ratios_and_verdicts():
    rows = _rows()
    assert rows["cold dataset load"]["result"] == "2.00x faster"  # median 8.0 s / median 4.0 s
    assert rows["cold dataset load"]["status"] == "met"
    assert rows["warm dataset load"]["result"] == "0.200 s"  # median of all six warm loads
    # Epochs pooled over both rounds, first epochs left out: median 20 s against median 40 s.
    assert rows["training throughput"]["result"] == "2.00x"
    # Medians over rounds: dog 0.70 against 0.71, cat 0.66 against 0.63: within noise.
    assert rows["dog / cat F1 of those runs"]["status"] == "met"
    assert rows["memory"]["result"] == "1,450 MB (highest of 2 runs)"
    assert rows["memory"]["status"] == "met"
    # One model call spoils the interaction figure however fast it was.
    assert rows["threshold change"]["status"] == "**missed**"
    assert rows["single prediction"]["status"] == "met"
    explained = rows["Grad-CAM overlay for that photo"]
    assert (explained["result"], explained["status"]) == ("95.0 ms", "met")  # 70 + 25 ms, within 100 ms
    # F1 0.84 for cat, and 610 s of training: missed on both counts.
    assert rows["accuracy"]["status"] == "**missed**"
    assert rows["accuracy"]["result"] == "0.840 (lower of the two), 0.010 short"
    # One seed run's indoor AUC of 0.62 is outside [0.4, 0.6]; every run is listed.
    assert rows["indoor honesty"]["status"] == "**missed**"
    assert rows["indoor honesty"]["result"] == "0.480–0.620"
    assert rows["indoor honesty"]["ours"].count("seed (mlcore)") == 2


def test_render_names_the_machine_and_marks_quick_runs():
    results = {
        **_results(),
        "machine": {
            "cpu": "Test CPU",
            "usable_cpus": 2,
            "logical_cpus": 4,
            "memory_gib": 8,
            "simd": ["avx2"],
            "bf16_hardware": False,
            "python": "3.12",
            "os": "Linux",
            "packages": {"keras": "3"},
        },
        "quick": True,
        "date": "2026-01-01 00:00 UTC",
        "suite_seconds": 60,
    }
    markdown = report.render(results)
    assert "Test CPU; 2 usable of 4 logical CPUs" in markdown
    assert "bfloat16 hardware (AVX512-BF16 or AMX): no" in markdown
    assert "Quick run" in markdown
    assert markdown.count("**missed**") == 3
