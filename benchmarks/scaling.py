"""Memory and speed against dataset size: 3k to 48k images, today's on-disk views beside the
previous in-memory arrays, each in its own process.

    python -m benchmarks.scaling --data-dir DIR [--sizes 3000 12000 24000 48000] [--batches 100]
    python -m benchmarks.scaling --render-only

The folders are the real photos hard-linked under new names (``copy3_cat.12.jpg``), so a
size of 24,000 is the 3,000 real images eight times: the decoder and the cache see 24,000
files. For each size and approach: the cold load (decode into an empty cache), the warm
load (from the cache), the seed network's training speed over ``--batches`` batches of 32
at 128 px (after 10 warm-up batches), and the process's peak RSS. ``--full-epoch N`` also
trains one whole epoch at size N with today's approach. The previous approach is rebuilt
here as it was: every decoded image held in a list, stacked, saved as one ``.npy``, loaded
whole, and every split a copy.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import emit, machine, peak_rss_mb, run_child

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "scaling.json"
IMAGE_SIZE = 128


def make_folder(data_dir: Path, target: Path, count: int) -> Path:
    """``count`` images in cats/ and dogs/: the real ones, hard-linked (or linked) under new names."""
    real = data_dir / "cats_and_dogs_filtered"
    sources = sorted(real.glob("*/cats/*.jpg")) + sorted(real.glob("*/dogs/*.jpg"))
    for index in range(count):
        source = sources[index % len(sources)]
        folder = target / source.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / f"copy{index // len(sources)}_{source.parent.parent.name}_{source.name}"
        if not link.exists():
            try:
                os.link(source, link)
            except OSError:
                link.symlink_to(source)
    return target


def _train_speed(images, targets, label_names, batches: int, full_epoch: bool) -> dict:
    from mlcore import train
    from mlcore.config import TrainConfig

    marks: dict[int, float] = {}
    stop = threading.Event()

    def progress(report) -> None:
        if report.kind == "batch" and report.epoch == 1:
            marks[report.batch] = time.perf_counter()
            if not full_epoch and report.batch >= 10 + batches:
                stop.set()

    started = time.perf_counter()
    train.train_model((images, targets), None, TrainConfig(epochs=1, batch_size=32), label_names,
                      on_progress=progress, stop=stop)  # fmt: skip
    last = max(marks)
    return {
        "images_per_second": (last - 10) * 32 / (marks[last] - marks[10]),
        "epoch_seconds": time.perf_counter() - started if full_epoch else None,
        "batches_timed": last - 10,
    }


def measure_flat(folder: Path, batches: int, full_epoch: bool) -> dict:
    from mlcore import datasets
    from mlcore.config import DataConfig

    config = DataConfig(source="folder", folder=str(folder), image_size=IMAGE_SIZE)
    started = time.perf_counter()
    datasets.load_splits(config)
    cold = time.perf_counter() - started
    after_cold = peak_rss_mb()
    started = time.perf_counter()
    splits = datasets.load_splits(config)
    warm = time.perf_counter() - started
    speed = _train_speed(splits.train.images, splits.train.targets, splits.label_names, batches, full_epoch)
    return {"cold_seconds": cold, "warm_seconds": warm, "peak_rss_after_load_mb": after_cold, **speed}


def measure_memory(folder: Path, batches: int) -> dict:
    """The previous approach, step by step as it was."""
    import numpy as np

    from mlcore import config as cfg
    from mlcore import datasets, labels

    layout = datasets.folder_layout(folder)
    paths = [folder / path for path, _, _ in layout.files]
    cache = cfg.cache_dir() / "previous.npy"
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(lambda path: datasets.decode_file(path, IMAGE_SIZE), paths, chunksize=16))
    good = [i for i, array in enumerate(decoded) if array is not None]
    images = np.stack([decoded[i] for i in good])
    del decoded
    np.save(cache, images)
    cold = time.perf_counter() - started
    del images
    after_cold = peak_rss_mb()
    started = time.perf_counter()
    images = np.load(cache)
    class_index = np.array([layout.files[i][2] for i in good], dtype=np.int32)
    keys = [layout.files[i][1] for i in good]
    rest, _test = datasets.stratified_split_indices(class_index, 0.2, 42)
    train_rows, _validation = datasets.stratified_split_indices(class_index[rest], 0.1, 43)
    chosen = rest[train_rows]
    train_images = images[chosen]  # the copies splits were
    targets = labels.make_targets(class_index[chosen], layout.class_names, [keys[i] for i in chosen],
                                  indoor_probability=0.5, seed=42)  # fmt: skip
    warm = time.perf_counter() - started
    speed = _train_speed(train_images, targets, labels.label_names(layout.class_names), batches, False)
    return {"cold_seconds": cold, "warm_seconds": warm, "peak_rss_after_load_mb": after_cold, **speed}


def child(args) -> None:
    os.environ["MLCORE_CACHE_DIR"] = str(args.cache_dir)
    if args.mode == "flat":
        result = measure_flat(args.folder, args.batches, args.full_epoch)
    else:
        result = measure_memory(args.folder, args.batches)
    emit({**result, "mode": args.mode, "images": args.images, "peak_rss_mb": peak_rss_mb()})


def render(results: dict) -> str:
    cpu = results["machine"]
    lines = [
        "## Scaling: memory and speed against dataset size",
        "",
        f"`python -m benchmarks.scaling`, {cpu['cpu']}, {cpu['usable_cpus']} usable CPUs "
        f"({', '.join(cpu['simd']) or 'no AVX'}; bfloat16 hardware: {'yes' if cpu['bf16_hardware'] else 'no'}), "
        f"{results['date']}. The real photos hard-linked under new names; seed network, 128 px, batch 32. "
        "Each cell is one process. *Today*: images in the disk cache, read a batch at a time. *Previous*: "
        "every image in memory (the approach before this change, rebuilt in the benchmark).",
        "",
        "| images | approach | cold load (s) | warm load (s) | training (img/s) | peak RSS (MB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['images']:,} | {'today' if row['mode'] == 'flat' else 'previous'} | {row['cold_seconds']:.1f} | "
            f"{row['warm_seconds']:.2f} | {row['images_per_second']:.0f} | {row['peak_rss_mb']:.0f} |"
        )
    policy = cpu.get("training_policy", "float32")
    lines += [
        "",
        f"Training ran in `{policy}`: "
        + (
            "this CPU has native bfloat16 (AVX512-BF16 or AMX)."
            if cpu["bf16_hardware"]
            else "this CPU has no AVX512-BF16 or AMX, so bfloat16 would be emulated and slower; the bfloat16 "
            "speed-up can only be measured on a host that has them."
        ),
    ]
    if results.get("full_epoch"):
        full = results["full_epoch"]
        lines += [
            "",
            f"One whole epoch at {full['images']:,} images (today's approach): {full['epoch_seconds']:.0f} s, "
            f"{full['images_per_second']:.0f} img/s, peak RSS {full['peak_rss_mb']:.0f} MB.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("MLCORE_DATA_DIR"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 12000, 24000, 48000])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--full-epoch", type=int, default=24000, help="also train one whole epoch at this size")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--measure", choices=("flat", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        args.mode, args.full_epoch = args.measure, bool(args.full_epoch and args.full_epoch == args.images)
        child(args)
        return
    if args.render_only:
        print(render(json.loads(RESULTS.read_text())))
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(HERE.parent)}
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": []}
    with tempfile.TemporaryDirectory(dir=HERE.parent.parent) as scratch:
        for size in args.sizes:
            folder = make_folder(args.data_dir, Path(scratch) / f"images-{size}", size)
            for mode in ("flat", "memory"):
                cache = Path(tempfile.mkdtemp(dir=scratch, prefix="cache-"))
                print(f"[{time.strftime('%H:%M:%S')}] {size:,} images, {mode}", file=sys.stderr, flush=True)
                extra = ["--full-epoch", "0"]
                row = run_child("scaling", ["--measure", mode, "--folder", str(folder), "--cache-dir", str(cache),
                                            "--images", str(size), "--batches", str(args.batches), *extra],
                                {**env, "MLCORE_CACHE_DIR": str(cache)}, 3600)  # fmt: skip
                results["rows"].append(row)
                RESULTS.write_text(json.dumps(results, indent=1))
        if args.full_epoch:
            folder = make_folder(args.data_dir, Path(scratch) / f"images-{args.full_epoch}", args.full_epoch)
            cache = Path(tempfile.mkdtemp(dir=scratch, prefix="cache-"))
            print(f"[{time.strftime('%H:%M:%S')}] one whole epoch at {args.full_epoch:,}", file=sys.stderr, flush=True)
            results["full_epoch"] = run_child(
                "scaling",
                ["--measure", "flat", "--folder", str(folder), "--cache-dir", str(cache), "--images",
                 str(args.full_epoch), "--batches", str(args.batches), "--full-epoch", str(args.full_epoch)],
                {**env, "MLCORE_CACHE_DIR": str(cache)}, 7200,
            )  # fmt: skip
            RESULTS.write_text(json.dumps(results, indent=1))
    print(render(results))


if __name__ == "__main__":
    main()
