"""The memory guard: estimates measured against real training and scoring, and the admission rule."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from benchmarks.memory import measure
from mlcore import memory

MB = memory.MB


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc")
@pytest.mark.parametrize(("architecture", "size", "batch"), [("seed", 64, 32), ("seed", 96, 64), ("compact", 96, 64)])
def test_the_training_estimate_covers_what_training_really_takes_without_doubling_it(architecture, size, batch):
    report = measure(architecture, size, batch)  # a fresh process: one epoch, then scoring 1,024 images
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


def test_short_jobs_hold_their_memory_while_they_run_so_concurrent_ones_cannot_overshoot():
    held = memory.process_rss()
    guard = memory.MemoryGuard(budget=held + 1000 * MB)
    refused = pytest.raises(memory.MemoryBudgetExceeded, match="Scoring 20 image\\(s\\) would need about 600 MB")
    with guard.hold("Scoring 500 image(s)", 600 * MB), refused:
        guard.check("Scoring 20 image(s)", 600 * MB)
    guard.check("Scoring 20 image(s)", 600 * MB)  # released when the first one ended
    with pytest.raises(RuntimeError, match="boom"), guard.hold("Scoring", 600 * MB):
        raise RuntimeError("boom")
    guard.check("Scoring", 600 * MB)  # released after a failure too


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


def test_estimating_in_a_script_thread_is_safe_while_streamlit_clears_keras_session():
    """Streamlit calls ``keras.backend.clear_session()`` after every script run; one that lands while
    another session's Start click builds a network to measure it broke the build ("the name conv2d
    is used 2 times") in 48 of 50 tries before the estimate counted as a worker."""
    import keras

    from app import jobs
    from mlcore.config import TrainConfig

    jobs.prepare_keras()
    memory.architecture_size.cache_clear()
    stop, failures = threading.Event(), []

    def clear_like_streamlit():
        while not stop.is_set():
            keras.backend.clear_session()

    def estimate(offset: int):
        for size in range(32 + offset, 160, 8):
            try:
                jobs.training_estimate(TrainConfig(), size, 3)
            except Exception as error:  # noqa: BLE001 (any failure of the build is the bug)
                failures.append(f"{type(error).__name__}: {error}")

    estimators = [threading.Thread(target=estimate, args=(offset,)) for offset in (0, 4)]
    threads = [threading.Thread(target=clear_like_streamlit), *estimators]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join()
    stop.set()
    threads[0].join()
    assert failures == []
