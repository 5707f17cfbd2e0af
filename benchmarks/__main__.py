"""Run every benchmark, each beside its baseline in the same run, and write the results.

    python -m benchmarks                 # the full suite on the real data (about 20 min on 2 cores)
    python -m benchmarks --quick         # a short smoke run (fewer epochs and repeats)
    python -m benchmarks --only loading prediction
    python -m benchmarks --render-only   # rewrite RESULTS.md from results.json

The real dataset is found as everywhere else: ``--data-dir``, ``MLCORE_DATA_DIR``
or the Keras cache. Results go to ``benchmarks/results.json`` and
``benchmarks/RESULTS.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import report
from benchmarks.common import machine, run_child

HERE = Path(__file__).resolve().parent
STEPS = ("loading", "training", "interaction", "prediction", "accuracy")


def child_env(cache_dir: Path, *, mlcore_defaults: bool = True, onednn: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "MLCORE_CACHE_DIR": str(cache_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
    }
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    return env


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_loading(data_dir: Path, scratch: Path, plan: dict) -> dict:
    baseline, ours = [], []
    for round_ in range(plan["load_rounds"]):
        log(f"loading round {round_ + 1}/{plan['load_rounds']}: image_dataset_from_directory")
        baseline.append(run_child("baseline", ["load", "--data-dir", str(data_dir)], child_env(scratch), 600))
        log(f"loading round {round_ + 1}/{plan['load_rounds']}: mlcore, empty cache then {plan['warm']} warm loads")
        cache = Path(tempfile.mkdtemp(dir=scratch, prefix="cold-"))
        ours.append(
            run_child(
                "loading",
                ["--data-dir", str(data_dir), "--cache-dir", str(cache), "--warm", str(plan["warm"])],
                child_env(cache),
                600,
            )
        )
    return {"baseline": baseline, "ours": ours}


def run_training(data_dir: Path, cache: Path, plan: dict) -> dict:
    """Rounds of notebook / mlcore / notebook with oneDNN, interleaved so host noise hits all three."""
    epochs = str(plan["epochs"])
    runs: dict[str, list[dict]] = {"notebook": [], "ours": [], "notebook_onednn": []}
    for round_ in range(plan["training_rounds"]):
        prefix = f"training round {round_ + 1}/{plan['training_rounds']}"
        log(f"{prefix}: notebook pipeline, TensorFlow defaults, {epochs} epochs")
        runs["notebook"].append(
            run_child("baseline", ["train", "--data-dir", str(data_dir), "--epochs", epochs], child_env(cache), 3600)
        )
        log(f"{prefix}: mlcore seed network, {epochs} epochs")
        runs["ours"].append(
            run_child("training", ["--data-dir", str(data_dir), "--epochs", epochs], child_env(cache), 3600)
        )
        log(f"{prefix}: notebook pipeline with oneDNN kernels on, {epochs} epochs")
        runs["notebook_onednn"].append(
            run_child(
                "baseline",
                ["train", "--data-dir", str(data_dir), "--epochs", epochs],
                child_env(cache, onednn="1"),
                3600,
            )
        )
    return runs


def run_accuracy(data_dir: Path, cache: Path, plan: dict) -> dict:
    log(f"accuracy: compact network, {plan['compact_epochs']} epochs at {plan['compact_size']} px")
    return run_child(
        "training",
        [
            "--data-dir",
            str(data_dir),
            "--architecture",
            "compact",
            "--epochs",
            str(plan["compact_epochs"]),
            "--image-size",
            str(plan["compact_size"]),
            "--learning-rate",
            str(plan["compact_learning_rate"]),
        ],
        child_env(cache),
        3600,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding cats_and_dogs_filtered")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=STEPS)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats: checks the suite runs")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--render-only", action="store_true", help="measure nothing: rewrite RESULTS.md from the results.json beside it"
    )
    args = parser.parse_args()
    json_path = args.out.with_name("results.json")
    if args.render_only:
        args.out.write_text(report.render(json.loads(json_path.read_text())))
        return

    from mlcore import datasets

    try:
        data_dir = datasets.resolve_real_dataset(args.data_dir, download=False).parent
    except datasets.DatasetUnavailable as error:
        sys.exit(f"benchmarks need the real dataset: {error}")
    plan = report.QUICK_PLAN if args.quick else report.FULL_PLAN
    started = time.perf_counter()
    results: dict = {
        "machine": machine(),
        "plan": plan,
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="mlcore-bench-") as scratch_name:
        scratch = Path(scratch_name)
        cache = scratch / "cache"
        if "loading" in args.only:
            results["loading"] = run_loading(data_dir, scratch, plan)
        if "training" in args.only:
            results["training"] = run_training(data_dir, cache, plan)
        if "interaction" in args.only:
            log("interaction: Evaluate page reruns in a real app session")
            results["interaction"] = run_child(
                "interaction",
                ["--repeats", str(plan["repeats"])],
                child_env(cache) | {"MLCORE_DATA_DIR": str(data_dir)},
                1200,
            )
        if "prediction" in args.only:
            log("prediction: one 500x375 JPEG, ours beside model.predict")
            results["prediction"] = run_child(
                "prediction",
                ["--data-dir", str(data_dir), "--repeats", str(plan["repeats"] * 2)],
                child_env(cache),
                600,
            )
        if "accuracy" in args.only:
            results["accuracy"] = run_accuracy(data_dir, cache, plan)
    results["suite_seconds"] = round(time.perf_counter() - started)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    args.out.write_text(report.render(results))
    log(f"wrote {args.out} and {json_path} after {results['suite_seconds']} s")


if __name__ == "__main__":
    main()
