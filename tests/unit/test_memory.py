"""The memory guard: estimates measured against real training and scoring, and the admission rule."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlcore import memory

ROOT = Path(__file__).resolve().parents[2]
MB = memory.MB
# A fresh process trains (one epoch, as the app does, then scores 1,024 images in the app's
# chunks) and reports how far its resident memory rose above where it stood before.
TRAIN_CHILD = """
import json, sys
import numpy as np
from mlcore import memory, predict, train
from mlcore.config import TrainConfig

def status(field):
    line = next(line for line in open("/proc/self/status") if line.startswith(field))
    return int(line.split()[1]) * 1024

architecture, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (max(4 * batch, 256), size, size, 3), dtype=np.uint8)
targets = (rng.random((len(images), 3)) > 0.5).astype(np.float32)
estimate = memory.training_bytes(architecture, size, 3, batch)
with open("/proc/self/clear_refs", "w") as marks:
    marks.write("5")
before = status("VmRSS")
result = train.train_model(
    (images, targets), (images[:64], targets[:64]), TrainConfig(architecture=architecture, epochs=1, batch_size=batch),
    ("a", "b", "c"),
)
predict.predict_proba(result.model, np.resize(images, (1024, size, size, 3)))
print(json.dumps({"peak": status("VmHWM") - before, "estimate": estimate}))
"""


def measured_training(architecture: str, size: int, batch: int) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", TRAIN_CHILD, architecture, str(size), str(batch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc")
@pytest.mark.parametrize(("architecture", "size", "batch"), [("seed", 64, 32), ("seed", 96, 64), ("compact", 96, 64)])
def test_the_training_estimate_covers_what_training_really_takes_without_doubling_it(architecture, size, batch):
    report = measured_training(architecture, size, batch)
    assert report["peak"] <= report["estimate"] <= 2 * report["peak"] + 100 * MB, {
        key: value // MB for key, value in report.items()
    }


def test_estimates_grow_with_the_batch_the_image_size_and_the_network():
    small = memory.training_bytes("seed", 64, 3, 32)
    assert memory.training_bytes("seed", 64, 3, 128) > small
    assert memory.training_bytes("seed", 128, 3, 32) > small
    weights, activations, batch_norm = memory.architecture_size("seed", 128, 3)
    assert not batch_norm
    assert memory.architecture_size("compact", 128, 3).batch_norm
    assert weights == 7_392_707, "the seed network at 128 px: 126x126x32 conv, ..., a 57,600 x 128 dense layer"
    assert activations > 126 * 126 * 32, "at least the first convolution's output"


def test_a_short_job_that_does_not_fit_is_refused_with_the_numbers():
    held = memory.process_rss()
    guard = memory.MemoryGuard(budget=held + 100 * MB)
    guard.check("Scoring 10 image(s)", 50 * MB)  # fits
    with pytest.raises(memory.MemoryBudgetExceeded) as refused:
        guard.check("Scoring 5,000 image(s)", 400 * MB)
    message = str(refused.value)
    assert message.startswith("Scoring 5,000 image(s) would need about 400 MB")
    assert f"of its {(held + 100 * MB) // MB:,} MB budget" in message
    assert "MB left" in message


def test_a_running_job_counts_at_its_estimate_until_it_is_released():
    held = memory.process_rss()
    guard = memory.MemoryGuard(budget=held + 1000 * MB)
    first, second = object(), object()
    guard.reserve(first, "Training", 600 * MB)
    assert guard.committed() >= held + 600 * MB
    with pytest.raises(memory.MemoryBudgetExceeded, match="Training would need about 600 MB"):
        guard.reserve(second, "Training", 600 * MB)  # 600 + 600 promised: over the budget
    guard.release(first)
    guard.reserve(second, "Training", 600 * MB)  # the slot's memory came back
    guard.release(second)
    assert guard.committed() < held + 600 * MB


def test_reservations_from_many_threads_never_overshoot_the_budget():
    held = memory.process_rss()
    guard = memory.MemoryGuard(budget=held + 1000 * MB)
    admitted, tokens = [], [object() for _ in range(16)]

    def take(token):
        try:
            guard.reserve(token, "Training", 300 * MB)
            admitted.append(token)
        except memory.MemoryBudgetExceeded:
            pass

    threads = [threading.Thread(target=take, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 3, "three jobs of 300 MB fit in 1,000 MB, a fourth does not"
