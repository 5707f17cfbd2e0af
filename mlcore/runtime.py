"""Process-level settings: match TensorFlow's thread pools to the CPUs we may use.

Containers (Streamlit Community Cloud among them) often show the host's core
count while a cgroup quota allows far fewer; sizing thread pools by the host
count makes every op oversubscribe the real CPUs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_configured = False


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max`` or v1 CFS files), if any."""
    v2 = root / "cpu.max"
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may actually use: affinity mask and cgroup quota, whichever is lower."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


def configure_threads() -> int:
    """Size TensorFlow's intra/inter-op pools to :func:`available_cpus`, once per process."""
    global _configured
    cpus = available_cpus()
    if _configured:
        return cpus
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
    except RuntimeError:
        pass  # TensorFlow already started its pools; keep what it has
    _configured = True
    return cpus


# --- bfloat16 where the CPU computes it natively ----------------------------------------------

BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
BFLOAT16_ENV = "MLCORE_BFLOAT16"  # "off" keeps float32 everywhere
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags the kernel reports for the first CPU (empty where unknown)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bfloat16_native(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has AVX512-BF16 or AMX, so bfloat16 matrix work runs natively."""
    return bool(BFLOAT16_FLAGS & (cpu_flags() if flags is None else flags))


def training_policy(allowed: bool | None = None, flags: frozenset[str] | None = None) -> str:
    """The Keras dtype policy to train in: ``mixed_bfloat16`` where the CPU has native bfloat16
    and it is allowed (``allowed``, else ``MLCORE_BFLOAT16`` not set to off), else ``float32``.
    Elsewhere bfloat16 is emulated and slower than float32."""
    if allowed is None:
        allowed = os.environ.get(BFLOAT16_ENV, "auto").strip().lower() not in ("off", "0", "false", "no")
    return "mixed_bfloat16" if allowed and bfloat16_native(flags) else "float32"


# --- tf.distribute ---------------------------------------------------------------------------

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str):
    """The ``tf.distribute`` strategy called ``name``: one device, every local GPU, or every
    worker named in ``TF_CONFIG``. Create it first thing: it must exist before TensorFlow runs."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi-worker needs TF_CONFIG naming the cluster and this worker's task")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def is_chief(strategy) -> bool:
    """Whether this process writes the results: always, except on a non-chief worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def is_multi_worker(strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` (one process per worker)."""
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
