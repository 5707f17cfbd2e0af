"""Training jobs: a worker thread per job, reporting into a lock-protected object.

The worker makes no Streamlit calls, so nothing a user does in the browser can
interrupt ``model.fit``; a fragment polls :meth:`TrainingJob.status` instead.
A server-wide :class:`JobLimiter` caps how many jobs train at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable

from app import compat, runs, settings
from mlcore import memory
from mlcore.config import DataConfig, TrainConfig
from mlcore.datasets import Splits

logger = logging.getLogger(__name__)
MAX_TRACE_POINTS = 600  # live curve points kept per metric; older ones are thinned
TRACE_METRICS = ("loss", "binary_accuracy", "auc")
Keeper = Callable[[runs.Run], tuple[runs.Run, str | None]]  # stores a run: (the stored run, a problem or None)


class JobLimitReached(RuntimeError):
    """Every training slot on this server is taken."""


class JobLimiter:
    """A counter of running jobs with a fixed capacity, safe across threads.

    Each job keeps the limiter it took a slot from and gives the slot back to
    that same object, even if the module is reloaded meanwhile.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.capacity:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)


LIMITER = JobLimiter(settings.max_jobs())
GUARD = memory.MemoryGuard(settings.memory_budget() or 2**62)  # server-wide, like the limiter
_workers = 0  # training threads alive in this process
_workers_lock = threading.Lock()
_prepared = False
_prepare_lock = threading.Lock()


@contextlib.contextmanager
def worker_running():
    """Count a training thread as alive for as long as the block runs."""
    global _workers
    with _workers_lock:
        _workers += 1
    try:
        yield
    finally:
        with _workers_lock:
            _workers -= 1


def prepare_keras() -> None:
    """Import Keras for this process once, and make it live well inside Streamlit.

    - TensorFlow's thread pools are sized to the CPUs this process may use, before they start;
    - Streamlit's ``keras.backend.clear_session()`` after every script run is skipped while a
      training thread is alive (:func:`app.compat.shield_keras` says why);
    - that call's full ``gc.collect()`` walks every object TensorFlow created at import (about
      0.25 s per rerun on two cores): freezing those import-time objects once, before any model
      exists, makes that collection nearly free.
    """
    global _prepared
    with _prepare_lock:  # a second caller waits until the first one is done
        if _prepared:
            return
        import keras  # noqa: F401  (imported here so the freeze below covers TensorFlow's objects)

        from mlcore import runtime

        runtime.configure_threads()
        gc.freeze()
        compat.shield_keras(lambda: _workers > 0)
        _prepared = True


def training_estimate(config: TrainConfig, image_size: int, num_labels: int) -> int:
    """:func:`mlcore.memory.training_bytes`, safe from a script thread. The network is built to be
    measured, so it counts as a worker meanwhile: Streamlit's ``clear_session`` after another
    session's script run would reset Keras' layer names halfway through the build."""
    prepare_keras()
    with worker_running():
        return memory.training_bytes(config.architecture, image_size, num_labels, config.batch_size)


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A consistent snapshot of a job. ``phase``: preparing, training, scoring,
    finished, stopped or failed."""

    phase: str
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    elapsed: float = 0.0
    history: dict = dataclasses.field(default_factory=dict)
    trace: dict = dataclasses.field(default_factory=dict)
    stop_requested: bool = False
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.phase in ("finished", "stopped", "failed")

    @property
    def fraction(self) -> float:
        """Share of all batches done, 0..1."""
        total = self.epochs * self.batches
        return min(1.0, ((self.epoch - 1) * self.batches + self.batch) / total) if total and self.epoch else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, extrapolated from the pace so far; ``None`` before the first batch."""
        if self.fraction <= 0:
            return None
        return self.elapsed / self.fraction * (1 - self.fraction)


class TrainingJob:
    """One training run in a daemon thread; start with :meth:`start`."""

    def __init__(
        self,
        splits: Splits,
        data_config: DataConfig,
        train_config: TrainConfig,
        *,
        limiter: JobLimiter | None = None,
        guard: memory.MemoryGuard | None = None,
        keep: Keeper | None = None,
    ):
        self.splits, self.data_config, self.train_config = splits, data_config, train_config
        self._limiter = limiter if limiter is not None else LIMITER
        self._guard = guard if guard is not None else GUARD
        self._keep = keep
        self.keep_message: str | None = None  # why the run could not be stored, if it could not
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status = JobStatus("preparing", epochs=train_config.epochs)
        self._trace: dict[str, list[float]] = {key: [] for key in ("x", *TRACE_METRICS)}
        self._history: dict[str, list[float]] = {}
        self._run: runs.Run | None = None
        self._thread = threading.Thread(target=self._work, name="mlcore-training", daemon=True)

    def start(self) -> TrainingJob:
        if not self._limiter.try_acquire():
            raise JobLimitReached(
                f"The server is already training {self._limiter.capacity} model(s), its limit. "
                "Try again in a few minutes."
            )
        advice = "Try a smaller batch size or image size (Data page), or wait for other trainings to finish."
        try:
            self._guard.reserve(self, *self.memory_needed(), advice)
            self._thread.start()
        except BaseException:
            self._guard.release(self)
            self._limiter.release()
            raise
        return self

    def memory_needed(self) -> tuple[str, int]:
        """What this job is, in words, and the bytes it is estimated to add while it runs."""
        config, size = self.train_config, self.splits.train.images.shape[1]
        what = f"Training the {config.architecture} network on {size} px images in batches of {config.batch_size}"
        return what, training_estimate(config, size, len(self.splits.label_names))

    def request_stop(self) -> None:
        """Ask the worker to stop at the next batch; the partial model is kept."""
        self._stop.set()
        self._update(stop_requested=True)

    def status(self) -> JobStatus:
        with self._lock:
            return dataclasses.replace(
                self._status,
                history={key: list(values) for key, values in self._history.items()},
                trace={key: list(values) for key, values in self._trace.items()},
            )

    @property
    def run(self) -> runs.Run | None:
        """The finished run (also after a stop); ``None`` while running or after a failure."""
        return self._run

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = dataclasses.replace(self._status, **changes)

    def _on_progress(self, progress) -> None:
        with self._lock:
            if progress.kind == "batch":
                self._trace["x"].append(progress.epoch - 1 + progress.batch / progress.batches)
                for key in TRACE_METRICS:
                    self._trace[key].append(progress.logs.get(key, float("nan")))
                if len(self._trace["x"]) > MAX_TRACE_POINTS:
                    for values in self._trace.values():
                        del values[::2]
            else:
                for key, value in progress.logs.items():
                    self._history.setdefault(key, []).append(value)
            self._status = dataclasses.replace(
                self._status,
                phase="training",
                epoch=progress.epoch,
                epochs=progress.epochs,
                batch=progress.batch,
                batches=progress.batches,
                elapsed=progress.elapsed,
            )

    def _work(self) -> None:
        started = time.perf_counter()
        try:
            with worker_running():
                self._train_and_score(started)
        except Exception as error:  # any failure must end the job visibly, never silently
            logger.exception("training job failed")
            self._update(phase="failed", error=f"Training failed: {error}")
        finally:
            self._guard.release(self)
            self._limiter.release()

    def _train_and_score(self, started: float) -> None:
        from mlcore import train  # deferred: importing TensorFlow costs seconds

        prepare_keras()
        splits = self.splits
        result = train.train_model(
            (splits.train.images, splits.train.targets),
            (splits.validation.images, splits.validation.targets),
            self.train_config,
            splits.label_names,
            on_progress=self._on_progress,
            stop=self._stop,
        )
        self._update(phase="scoring")
        run = runs.from_training(result, splits, self.data_config, self.train_config)
        if self._keep is not None:  # here, not in a script run: saving a model takes a moment
            try:
                run, self.keep_message = self._keep(run)
            except Exception as error:  # keeping the run is best effort: it never costs the run itself
                logger.exception("keeping the run failed")
                self.keep_message = f"This run is kept for this session only: storing it failed ({error})."
        self._run = run
        self._update(phase="stopped" if result.stopped else "finished", elapsed=time.perf_counter() - started)
