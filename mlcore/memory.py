"""Memory before a job starts: what this process holds, what a job would add, and a budget.

A shared server (a Community Cloud app has about 2.7 GB for every visitor together) must
refuse a job that would not fit, with a message, rather than start it and be killed by the
kernel with every session on it. Estimates come from the network itself (its weights and
the activations of one batch) with constants measured on this code (``benchmarks/RESULTS.md``
has the table); they err on the high side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import resource
import sys
import threading
from pathlib import Path
from typing import NamedTuple

from mlcore.config import WEIGHT_AVERAGE_DECAY

MB = 2**20
# Fitted to peak resident memory measured on this code (``python -m benchmarks.memory``: one
# epoch, then scoring 1,024 images; seed and compact networks, 64-192 px, batches 32-512) and
# rounded up, so every estimate is 1.1-1.6 times its peak. A training step holds about six copies
# of the weights (them, their gradients, Adam's moments) and 1.9 of each batch's activations (1.2
# in a network with batch norm, whose activations TensorFlow fuses more); such a network then
# recomputes its statistics in batches of 64, holding about two copies of their activations;
# scoring the splits afterwards adds 0.8 of a batch of 64's, on top of what training left.
# The compact network also keeps an average of its weights in float64 (two copies) and, while
# it validates, the raw weights (a third).
# ``tests/unit/test_memory.py`` checks estimates lie between the measured peak and twice it plus 100 MB.
TRAINING_FIXED, WEIGHT_COPIES, AVERAGE_WEIGHT_COPIES = 120 * MB, 6, 3
TRAINING_ACTIVATION_COPIES, BATCH_NORM_ACTIVATION_COPIES = 1.9, 1.2
RECALIBRATION_BATCH, RECALIBRATION_ACTIVATION_COPIES = 64, 2.0
SCORING_AFTER_TRAINING_COPIES = 0.8
SCORING_FIXED, SCORING_ACTIVATION_COPIES = 40 * MB, 1.1
SCORING_BATCH = 64  # predict_proba's batch: what one scoring step holds


WAIT = "Try again when other jobs on this server have finished."


class MemoryBudgetExceeded(RuntimeError):
    """A job would push this process past its memory budget; the message says by how much."""


def process_rss() -> int:
    """This process's resident memory now, in bytes (Linux; elsewhere its peak so far)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


class NetworkSize(NamedTuple):
    weights: int  # float32 values
    activations: int  # float32 values per image, every layer's output summed
    batch_norm: bool


def network_size(network) -> NetworkSize:
    """The figures of a built network the estimates need."""
    activations = 0
    for layer in network.layers:
        count = 1
        for side in layer.output.shape[1:]:
            count *= int(side)
        activations += count
    batch_norm = any(type(layer).__name__ == "BatchNormalization" for layer in network.layers)
    return NetworkSize(network.count_params(), activations, batch_norm)


@functools.lru_cache(maxsize=32)
def architecture_size(architecture: str, image_size: int, num_labels: int) -> NetworkSize:
    """:func:`network_size` of a network not built yet (it is built once, and dropped)."""
    from mlcore.model import build_model  # deferred: importing Keras costs seconds

    return network_size(build_model((image_size, image_size, 3), num_labels, architecture=architecture))


def _scoring(size: NetworkSize, images: int) -> int:
    batch = min(images, SCORING_BATCH)
    return int(SCORING_FIXED + 4 * (size.weights + SCORING_ACTIVATION_COPIES * batch * size.activations))


def training_bytes(architecture: str, image_size: int, num_labels: int, batch_size: int) -> int:
    """Memory training a network adds to the process at its peak: a training step or the batch-norm
    recalibration after it, then scoring the splits on top (the memory training freed is kept by the
    allocator, and scoring's batches of another shape do not reuse all of it)."""
    size = architecture_size(architecture, image_size, num_labels)
    weights, activations = size.weights, size.activations
    copies = BATCH_NORM_ACTIVATION_COPIES if size.batch_norm else TRAINING_ACTIVATION_COPIES
    weight_copies = WEIGHT_COPIES + (AVERAGE_WEIGHT_COPIES if architecture in WEIGHT_AVERAGE_DECAY else 0)
    training = TRAINING_FIXED + 4 * (weight_copies * weights + copies * batch_size * activations)
    if size.batch_norm:
        recalibration = 4 * (weights + RECALIBRATION_ACTIVATION_COPIES * RECALIBRATION_BATCH * activations)
        training = max(training, TRAINING_FIXED + recalibration)
    return int(training + 4 * SCORING_AFTER_TRAINING_COPIES * SCORING_BATCH * activations)


def scoring_bytes(network, images: int) -> int:
    """Memory scoring ``images`` pictures with ``network`` adds (they go through it in batches of 64)."""
    return _scoring(network_size(network), images)


@dataclasses.dataclass
class MemoryGuard:
    """Admits jobs while this process, with what its running jobs were estimated to need, stays
    within ``budget`` bytes.

    A running job's memory shows up in the process's resident size as it grows, so the
    process counts as holding the larger of its resident size now and its size when the
    running jobs began plus their estimates: a job that has not reached its peak yet still
    counts at its peak, and one past it is not counted twice.
    """

    budget: int
    _base: int = 0
    _reserved: dict = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def committed(self) -> int:
        """Bytes this process holds or has promised to running jobs."""
        with self._lock:
            return self._committed()

    def _committed(self) -> int:
        return max(process_rss(), self._base + sum(self._reserved.values()))

    def check(self, what: str, needed: int, advice: str = WAIT) -> None:
        """Raise :class:`MemoryBudgetExceeded` when a short job of ``needed`` bytes would not fit;
        its message ends with ``advice``."""
        with self._lock:
            self._refuse_if_over(what, needed, advice)

    @contextlib.contextmanager
    def hold(self, what: str, needed: int, advice: str = WAIT):
        """Admit a job for the duration of a ``with`` block, counting ``needed`` bytes for it."""
        token = object()
        self.reserve(token, what, needed, advice)
        try:
            yield
        finally:
            self.release(token)

    def reserve(self, token: object, what: str, needed: int, advice: str = WAIT) -> None:
        """Admit a long job (a training) and count ``needed`` bytes for it until :meth:`release`."""
        with self._lock:
            self._refuse_if_over(what, needed, advice)
            if not self._reserved:
                self._base = process_rss()
            self._reserved[id(token)] = needed

    def release(self, token: object) -> None:
        with self._lock:
            self._reserved.pop(id(token), None)

    def _refuse_if_over(self, what: str, needed: int, advice: str) -> None:
        held = self._committed()
        if held + needed > self.budget:
            raise MemoryBudgetExceeded(
                f"{what} would need about {needed // MB:,} MB, and this server has "
                f"{max(0, self.budget - held) // MB:,} MB left of its {self.budget // MB:,} MB budget "
                f"({held // MB:,} MB in use or promised to running jobs). {advice}"
            )
