"""The memory guard's estimates beside the peaks they stand for, each in its own process.

    python -m benchmarks.memory [--configs seed:128:32 compact:128:32 ...]
    python -m benchmarks.memory --render-only

For each network, image size and batch: a fresh process makes random uint8 images, resets
its peak-memory mark (Linux: ``/proc/self/clear_refs``), trains one epoch with
``mlcore.train.train_model`` as the app does, scores 1,024 images, and reports how far its
resident memory rose, beside ``mlcore.memory.training_bytes``'s estimate made before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.common import emit, machine, run_child

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "memory.json"
MB = 2**20
CONFIGS = (
    "seed:64:32",
    "seed:128:32",
    "seed:128:128",
    "seed:192:32",
    "compact:96:64",
    "compact:128:32",
    "compact:128:128",
    "compact:192:64",
)


def _status_bytes(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024


def measure_here(architecture: str, size: int, batch: int) -> dict:
    """Train and score in this process; return the peak rise and the estimate, in bytes."""
    import numpy as np

    from mlcore import memory, predict, train
    from mlcore.config import TrainConfig

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(4 * batch, 256), size, size, 3), dtype=np.uint8)
    targets = (rng.random((len(images), 3)) > 0.5).astype(np.float32)
    estimate = memory.training_bytes(architecture, size, 3, batch)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_bytes("VmRSS")
    config = TrainConfig(architecture=architecture, epochs=1, batch_size=batch)
    result = train.train_model((images, targets), (images[:64], targets[:64]), config, ("a", "b", "c"))
    predict.predict_proba(result.model, np.resize(images, (1024, size, size, 3)))
    return {"peak": _status_bytes("VmHWM") - before, "estimate": estimate}


def measure(architecture: str, size: int, batch: int) -> dict:
    """:func:`measure_here` in a fresh process, so nothing before it counts."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return run_child("memory", ["--child", f"{architecture}:{size}:{batch}"], env, timeout=900)


def render(results: dict) -> str:
    cpu = results["machine"]
    lines = [
        "## Memory guard: estimates against measured peaks",
        "",
        f"`python -m benchmarks.memory`, {cpu['cpu']}, {cpu['usable_cpus']} usable CPUs, {results['date']}. One "
        "process per row: one epoch of training, then scoring 1,024 images; the rise of peak resident memory "
        "above the process before training, beside `mlcore.memory.training_bytes`. The guard refuses a job "
        "whose estimate does not fit; an estimate below the peak would let the kernel find out instead.",
        "",
        "| network | image px | batch | measured peak (MB) | estimate (MB) | estimate / peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['architecture']} | {row['size']} | {row['batch']} | {row['peak'] / MB:,.0f} | "
            f"{row['estimate'] / MB:,.0f} | {row['estimate'] / row['peak']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="network:image size:batch")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if args.child:
        architecture, size, batch = args.child.split(":")
        emit(measure_here(architecture, int(size), int(batch)))
        return
    if not args.render_only:
        rows = []
        for config in args.configs:
            architecture, size, batch = config.split(":")
            print(f"[{time.strftime('%H:%M:%S')}] {config}", file=sys.stderr, flush=True)
            report = measure(architecture, int(size), int(batch))
            rows.append({"architecture": architecture, "size": int(size), "batch": int(batch), **report})
        results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows}
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(render(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
